//! What the SMART launch tests share: a mock EHR beside a Wardline that trusts it, a "browser"
//! (an HTTP client that keeps cookies and does not follow redirects, so every step is checked),
//! and a launch driven through the EHR's consent page.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wardline::config::Secret;
use wardline::demo::mock_ehr::{LaunchCtx, MockClient, MockEhr};
use wardline::smart::config::TrustedIssuer;

use crate::fhir_write::send;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};

pub const MRN: &str = "urn:wardline:mrn";
pub const VISIT: &str = "urn:wardline:visit";
pub const CLIENT: &str = "wardline-test";
pub const SECRET: &str = "test-client-secret";
/// The NPI the EHR knows the clinician by (its Practitioner id).
pub const NPI: &str = "1999999996";

/// How Wardline authenticates at the EHR's token endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Client secret (HTTP Basic).
    Secret,
    /// No authentication: PKCE only.
    Public,
    /// `private_key_jwt`: a JWT signed by Wardline's key, checked against `/smart/jwks.json`.
    KeyJwt,
}

pub struct Env {
    pub app: TestApp,
    pub ehr: Arc<MockEhr>,
    pub clinician: TestUser,
    /// The Wardline room of the seeded encounter.
    pub room: String,
}

/// Wardline (trusting the mock EHR, registered there as `client`)
/// with a patient (MRN S-1, born 1961-07-04, visit FV-1) that arrived over FHIR, and the mock EHR
/// holding the same patient as Patient/p1 and Encounter/e1.
pub async fn env(
    backend: Backend,
    client: Client,
    change: impl FnOnce(&mut wardline::config::Config),
) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iss = format!("http://{}/fhir", listener.local_addr().unwrap());
    let app = spawn_app_with(backend, |cfg| {
        cfg.smart.issuers.push(TrustedIssuer {
            iss: iss.clone(),
            client_id: CLIENT.into(),
            client_secret: (client == Client::Secret).then(|| Secret::new(SECRET)),
            client_key_file: (client == Client::KeyJwt).then(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smart/test-client-key.pem")
            }),
            client_key_id: None,
        });
        cfg.smart.join_on_launch = true;
        cfg.smart.contact = Some("the HIM desk at ext. 4000".into());
        change(cfg);
    })
    .await;
    let ehr = MockEhr::serve(listener).unwrap();
    ehr.set_wardline(&app.base);
    ehr.register(MockClient {
        id: CLIENT.into(),
        secret: (client == Client::Secret).then(|| SECRET.to_string()),
        redirect_uri: format!("{}/smart/callback", app.base),
        jwks_url: (client == Client::KeyJwt).then(|| format!("{}/smart/jwks.json", app.base)),
    });
    ehr.practitioner(NPI, "Dr. Smart Test");
    ehr.put(ehr_patient("p1", "S-1", Some("1961-07-04")));
    ehr.put(ehr_encounter("e1", "FV-1", "p1"));
    let clinician = app
        .user_from(json!({"username": "dr.smart", "display_name": "Dr. Smart Test", "roles": ["clinician"], "npi": NPI}))
        .await;
    let feed = app.user("ehr-feed", &["integration"]).await;
    let patient = json!({"resourceType": "Patient", "identifier": [{"system": MRN, "value": "S-1"}],
        "name": [{"family": "Okafor", "given": ["Chidi"]}], "birthDate": "1961-07-04", "gender": "male"});
    let (status, _, p) = send(&app, reqwest::Method::POST, &feed.token, "Patient", &patient, &[]).await;
    assert_eq!(status, 201, "{p}");
    let encounter = json!({"resourceType": "Encounter", "identifier": [{"system": VISIT, "value": "FV-1"}],
        "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/{}", p["id"].as_str().unwrap())}});
    let (status, _, e) = send(
        &app,
        reqwest::Method::POST,
        &feed.token,
        "Encounter",
        &encounter,
        &[],
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let mut db = app.db().await;
    let room: (String,) = sqlx::query_as(
        "SELECT r.id FROM rooms r JOIN encounters e ON e.id = r.encounter_id WHERE e.visit_number = 'FV-1'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    Env {
        app,
        ehr,
        clinician,
        room: room.0,
    }
}

pub fn ehr_patient(id: &str, mrn: &str, birth: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": id,
        "identifier": [{"system": "urn:other", "value": "X-9"}, {"system": MRN, "value": mrn}],
        "name": [{"use": "official", "family": "Okafor", "given": ["Chidi"], "text": "Chidi Okafor"}], "gender": "male"});
    if let Some(b) = birth {
        p["birthDate"] = json!(b);
    }
    p
}

pub fn ehr_encounter(id: &str, visit: &str, patient: &str) -> Value {
    json!({"resourceType": "Encounter", "id": id, "identifier": [{"system": VISIT, "value": visit}],
        "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/{patient}")}})
}

/// A launch context for the seeded clinician.
pub fn ctx(patient: &str, encounter: Option<&str>) -> LaunchCtx {
    LaunchCtx {
        patient: patient.into(),
        encounter: encounter.map(str::to_string),
        practitioner: NPI.into(),
        need_patient_banner: true,
    }
}

/// An HTTP client that keeps cookies and never follows redirects.
pub struct Browser {
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, resp: reqwest::Response) -> Page {
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            set_cookies,
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let resp = self
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(resp).await
    }

    pub async fn form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(resp).await
    }

    /// A JSON request with the session cookie (and a CSRF header when given).
    pub async fn api(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        csrf: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, url)
            .header("cookie", self.cookie_header());
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(c) = csrf {
            req = req.header("x-wardline-csrf", c);
        }
        req.send().await.unwrap()
    }
}

/// The steps up to the EHR's consent page; returns the request id the page carries.
pub async fn to_consent(b: &mut Browser, env: &Env, launch: &str) -> String {
    let iss = env.ehr.iss();
    let url = format!(
        "{}/smart/launch?iss={}&launch={launch}",
        env.app.base,
        urlencode(&iss)
    );
    let start = b.get(&url).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let authorize = start.location.unwrap();
    assert!(
        authorize.starts_with(&format!("{}/authorize?", env.ehr.base())),
        "{authorize}"
    );
    for p in [
        "code_challenge_method=S256",
        "response_type=code",
        &format!("aud={}", urlencode(&iss)),
        "launch=",
    ] {
        assert!(authorize.contains(p), "{p} missing in {authorize}");
    }
    let consent = b.get(&authorize).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let marker = "name=\"request\" value=\"";
    let at = consent.body.find(marker).expect("consent form") + marker.len();
    consent.body[at..].split('"').next().unwrap().to_string()
}

/// The consent decision; returns the callback URL the EHR redirects to.
pub async fn decide(b: &mut Browser, env: &Env, request: &str, decision: &str) -> String {
    let page = b
        .form(
            &format!("{}/authorize/decision", env.ehr.base()),
            &[("request", request), ("decision", decision)],
        )
        .await;
    assert!(page.status.is_redirection(), "{}", page.body);
    page.location.unwrap()
}

/// A whole launch: returns the callback URL used and Wardline's answer to it.
pub async fn launch(b: &mut Browser, env: &Env, ctx: LaunchCtx, decision: &str) -> (String, Page) {
    let id = env.ehr.launch(ctx);
    let request = to_consent(b, env, &id).await;
    let callback = decide(b, env, &request, decision).await;
    let page = b.get(&callback).await;
    (callback, page)
}

pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .unwrap()
        .trim_start_matches("v=")
        .to_string()
}

/// Audit actions recorded so far, oldest first, with outcome and detail.
pub async fn audit_actions(env: &Env, action: &str) -> Vec<(String, Value)> {
    let mut db = env.app.db().await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT outcome, detail FROM audit_log WHERE action = $1 ORDER BY seq")
            .bind(action)
            .fetch_all(&mut db)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(o, d)| (o, serde_json::from_str(&d).unwrap_or(Value::Null)))
        .collect()
}

/// The members of a room as `token` sees them (`null` when refused).
pub async fn members(env: &Env, token: &str, room: &str) -> Value {
    let resp = env.app.get(token, &format!("/api/v1/rooms/{room}/members")).await;
    resp.json().await.unwrap_or(Value::Null)
}
