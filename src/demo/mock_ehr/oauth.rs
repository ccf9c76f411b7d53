//! The mock EHR's pages and OAuth2 endpoints: the chart that frames Wardline, the consent page,
//! and a token endpoint that checks what a real one checks (client, redirect URI, PKCE S256,
//! single-use codes).

use super::*;

#[derive(Deserialize)]
pub(super) struct ChartQuery {
    patient: String,
    encounter: Option<String>,
    user: String,
    banner: Option<String>,
}

/// Lists the charts a demo user can open.
pub(super) async fn index(State(ehr): Ehr) -> Html<String> {
    let data = ehr.data();
    let mut rows = String::new();
    let mut encounters: Vec<_> = data
        .resources
        .iter()
        .filter(|(k, _)| k.starts_with("Encounter/"))
        .collect();
    encounters.sort_by_key(|(k, _)| k.as_str());
    for (key, r) in encounters {
        let patient = r["subject"]["reference"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("Patient/");
        let name = data
            .resources
            .get(&format!("Patient/{patient}"))
            .map(|p| {
                let name = p["name"][0]["text"].as_str().unwrap_or_default();
                let born = p["birthDate"].as_str().unwrap_or("?");
                let mrn = p["identifier"][0]["value"].as_str().unwrap_or("?");
                format!("{name} (born {born}, MRN {mrn})")
            })
            .unwrap_or_default();
        for (pid, pname) in &data.practitioners {
            rows.push_str(&format!(
                "<li><a href=\"/chart?patient={patient}&amp;encounter={enc}&amp;user={pid}\">{} — as {}</a></li>",
                escape(&name),
                escape(pname),
                enc = key.trim_start_matches("Encounter/"),
            ));
        }
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Mock EHR</title></head><body>\
         <h1>Mock EHR (demo only)</h1><p>Open a chart; Wardline launches inside it.</p><ul>{rows}</ul></body></html>"
    ))
}

/// A patient's chart with Wardline framed in it, launched the way an EHR launches apps.
pub(super) async fn chart(State(ehr): Ehr, Query(q): Query<ChartQuery>) -> Response {
    let launch = ehr.launch(LaunchCtx {
        patient: q.patient.clone(),
        encounter: q.encounter.clone(),
        practitioner: q.user.clone(),
        need_patient_banner: q.banner.as_deref() != Some("0"),
    });
    let name = ehr
        .data()
        .resources
        .get(&format!("Patient/{}", q.patient))
        .and_then(|p| p["name"][0]["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    let src = format!(
        "{}/smart/launch?iss={}&launch={}",
        ehr.wardline.lock().unwrap_or_else(|p| p.into_inner()),
        urlencode(&ehr.iss()),
        launch
    );
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chart — Mock EHR</title></head>\
         <body><header><strong>Mock EHR</strong> · Chart: {}</header>\
         <iframe id=\"app-frame\" title=\"Wardline\" src=\"{}\" width=\"900\" height=\"640\"></iframe></body></html>",
        escape(&name),
        escape(&src)
    ))
    .into_response()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|e| e.trim_start_matches("v=").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    aud: Option<String>,
    launch: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
}

fn bad(text: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(format!("<p>{}</p>", escape(text)))).into_response()
}

/// Checks the request as an EHR would, then asks the user.
pub(super) async fn authorize(State(ehr): Ehr, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut data = ehr.data();
    let Some(client) = data
        .clients
        .iter()
        .find(|c| Some(&c.id) == q.client_id.as_ref())
        .cloned()
    else {
        return bad("unknown client_id");
    };
    if q.redirect_uri.as_deref() != Some(client.redirect_uri.as_str()) {
        return bad("redirect_uri is not registered for this client");
    }
    if q.response_type.as_deref() != Some("code") {
        return bad("response_type must be code");
    }
    if q.code_challenge_method.as_deref() != Some("S256") || q.code_challenge.is_none() {
        return bad("PKCE S256 is required");
    }
    let scope = q.scope.clone().unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return bad("scope must include openid");
    }
    let smart = scope.split(' ').any(|s| s == "launch");
    let launch = if smart {
        if q.aud.as_deref() != Some(ehr.iss().as_str()) {
            return bad("aud must be this EHR's FHIR base");
        }
        let Some(launch) = q.launch.as_ref().and_then(|l| data.launches.get(l)).cloned() else {
            return bad("unknown launch");
        };
        launch
    } else {
        // Plain OpenID sign-in: whoever is signed in to the EHR (the first practitioner).
        let Some((practitioner, _)) = data.practitioners.first().cloned() else {
            return bad("nobody is signed in");
        };
        LaunchCtx {
            patient: String::new(),
            encounter: None,
            practitioner,
            need_patient_banner: true,
        }
    };
    let id = random();
    data.pending.insert(
        id.clone(),
        Pending {
            client_id: client.id.clone(),
            redirect_uri: client.redirect_uri.clone(),
            state: q.state.clone().unwrap_or_default(),
            challenge: q.code_challenge.clone().unwrap_or_default(),
            nonce: q.nonce.clone(),
            launch: launch.clone(),
            smart,
        },
    );
    let who = data
        .practitioners
        .iter()
        .find(|(p, _)| *p == launch.practitioner)
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorize — Mock EHR</title></head><body>\
         <h1>Allow Wardline?</h1><p>Signed in to the EHR as {}. Wardline asks for: {}.</p>\
         <form method=\"post\" action=\"/authorize/decision\"><input type=\"hidden\" name=\"request\" value=\"{id}\">\
         <button name=\"decision\" value=\"allow\">Allow</button> <button name=\"decision\" value=\"deny\">Deny</button>\
         </form></body></html>",
        escape(&who),
        escape(&scope)
    ))
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct Decision {
    request: String,
    decision: String,
}

/// The user's answer: a code, or `access_denied`.
pub(super) async fn decision(State(ehr): Ehr, Form(d): Form<Decision>) -> Response {
    let mut data = ehr.data();
    let Some(p) = data.pending.remove(&d.request) else {
        return bad("unknown request");
    };
    let sep = if p.redirect_uri.contains('?') { '&' } else { '?' };
    let state = urlencode(&p.state);
    // RFC 9207: the authorization server's identifier (SMART: the FHIR base).
    let iss = urlencode(&if p.smart { ehr.iss() } else { ehr.base.clone() });
    if d.decision != "allow" {
        return Redirect::to(&format!(
            "{}{sep}error=access_denied&state={state}&iss={iss}",
            p.redirect_uri
        ))
        .into_response();
    }
    let code = random();
    let location = format!("{}{sep}code={code}&state={state}&iss={iss}", p.redirect_uri);
    data.codes.insert(
        code,
        Code {
            pending: p,
            used: false,
        },
    );
    Redirect::to(&location).into_response()
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

fn token_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

/// Who the request authenticates as: HTTP Basic (confidential) or `client_id` (public).
fn client_of(headers: &HeaderMap, form: &TokenForm, clients: &[MockClient]) -> Option<MockClient> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic {
        Some(pair) => {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                    .ok()?
                    .pop()
                    .map(|(_, v)| v)
            };
            let (id, secret) = (decode(id)?, decode(secret)?);
            clients
                .iter()
                .find(|c| c.id == id && c.secret.as_deref() == Some(secret.as_str()))
                .cloned()
        }
        None => clients
            .iter()
            .find(|c| Some(&c.id) == form.client_id.as_ref() && c.secret.is_none() && c.jwks_url.is_none())
            .cloned(),
    }
}

/// The client a `private_key_jwt` assertion proves: signed by a key in the client's JWKS, about
/// itself, for this token endpoint, unexpired and never seen before.
async fn asymmetric_client(
    ehr: &MockEhr,
    f: &TokenForm,
    jwt: &str,
    clients: &[MockClient],
) -> Option<MockClient> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openidconnect::JsonWebKey;
    use openidconnect::core::CoreJsonWebKey;
    if f.client_assertion_type.as_deref() != Some(crate::auth::assertion::ASSERTION_TYPE) {
        return None;
    }
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return None;
    };
    let decode =
        |part: &str| -> Option<Value> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok() };
    let (head, body) = (decode(header)?, decode(claims)?);
    let client = clients
        .iter()
        .find(|c| Some(c.id.as_str()) == body["iss"].as_str() && c.jwks_url.is_some())?
        .clone();
    let fresh = body["exp"].as_i64()? > chrono::Utc::now().timestamp();
    if body["sub"] != body["iss"] || body["aud"].as_str() != Some(&format!("{}/token", ehr.base)) || !fresh {
        return None;
    }
    if !ehr.data().assertion_ids.insert(body["jti"].as_str()?.to_string()) {
        return None;
    }
    let jwks: Value = reqwest::get(client.jwks_url.as_deref()?)
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let key = jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"] == head["kid"])?;
    let key: CoreJsonWebKey = serde_json::from_value(key.clone()).ok()?;
    let alg = match head["alg"].as_str()? {
        "RS384" => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        "RS256" => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        _ => return None,
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    key.verify_signature(&alg, format!("{header}.{claims}").as_bytes(), &signature)
        .ok()?;
    Some(client)
}

/// The code exchange.
pub(super) async fn token(State(ehr): Ehr, headers: HeaderMap, Form(f): Form<TokenForm>) -> Response {
    if f.grant_type.as_deref() != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    let clients = ehr.data().clients.clone();
    let client = match &f.client_assertion {
        Some(jwt) => asymmetric_client(&ehr, &f, jwt, &clients).await,
        None => client_of(&headers, &f, &clients),
    };
    let Some(client) = client else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    };
    let mut data = ehr.data();
    let Some(code) = f.code.as_ref().and_then(|c| data.codes.get_mut(c)) else {
        return token_error("invalid_grant");
    };
    if code.used
        || code.pending.client_id != client.id
        || f.redirect_uri.as_deref() != Some(code.pending.redirect_uri.as_str())
    {
        code.used = true;
        return token_error("invalid_grant");
    }
    code.used = true;
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(
        f.code_verifier.clone().unwrap_or_default().as_bytes(),
    ));
    if computed != code.pending.challenge {
        return token_error("invalid_grant");
    }
    let pending = code.pending.clone();
    let access = random();
    data.tokens.insert(access.clone(), pending.launch.clone());
    drop(data);
    let id_token = match ehr.id_token(&pending) {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "launch openid fhirUser patient/Patient.rs patient/Encounter.rs",
        "id_token": id_token,
        "need_patient_banner": pending.launch.need_patient_banner,
        "smart_style_url": format!("{}/smart-style.json", ehr.base),
    });
    if !pending.launch.patient.is_empty() {
        body["patient"] = json!(pending.launch.patient);
    }
    if let Some(e) = &pending.launch.encounter {
        body["encounter"] = json!(e);
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
