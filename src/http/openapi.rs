//! The OpenAPI document at `/api/v1/openapi.json`, generated from the handlers' annotations so it
//! cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, attachments, audit, break_glass, error, messages, oncall, retention, rooms, ws};
use crate::chat::{frames, model, rooms as chat_rooms, service};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Wardline API", description = "Care-team messaging: rooms, messages, receipts, acknowledgements, on-call rosters and role messages. Real-time frames on /api/v1/ws (see ClientFrame and ServerFrame). The FHIR R4 API is under /fhir (CapabilityStatement at /fhir/metadata)."),
    paths(
        admin::me, admin::list_users, admin::create_user, admin::create_token, admin::revoke_token,
        rooms::list, rooms::create, rooms::get_one, rooms::members, rooms::add_member, rooms::remove_member,
        messages::send, messages::history, messages::sync, messages::read, messages::ack, messages::receipts,
        ws::upgrade,
        audit::search, audit::export, audit::verify,
        break_glass::request, break_glass::list, break_glass::review,
        attachments::upload, attachments::download,
        retention::archive, retention::place, retention::list, retention::release, retention::run,
        oncall::upload, oncall::lookup, oncall::message, oncall::run,
    ),
    components(schemas(
        error::Problem, frames::ClientFrame, frames::ServerFrame, model::Message, model::Room, model::Member,
        model::Receipt, model::Ack, service::Page, chat_rooms::NewRoomRequest,
        crate::audit::Entry, crate::audit::chain::Report, audit::AuditPage,
        crate::oncall::service::Uploaded, crate::oncall::service::OnCallTier, crate::oncall::job::Tick,
        oncall::RoleMessage,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Serves the document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
