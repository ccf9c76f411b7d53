//! SMART on FHIR EHR launch end to end over real HTTP against the mock EHR, on SQLite and
//! PostgreSQL: the happy path into a session (cookie, CSRF, banner, logout), every refusal of
//! SPEC §5 (records disagree, one identifier, another patient's encounter, wrong or foreign
//! `state`, replayed code, untrusted `iss`, consent denied), a room created from the EHR's data,
//! a public client with an id_token without `kid`, standalone OIDC sign-in and the idle timeout.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wardline::demo::mock_ehr::Behaviour;

use crate::helpers::Backend;
use crate::smart_support::*;

fn code_of(callback: &str) -> String {
    let query = callback.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    pairs.into_iter().find(|(k, _)| k == "code").unwrap().1
}

fn session_cookie(page: &Page) -> Option<&String> {
    page.set_cookies
        .iter()
        .find(|c| c.starts_with("wardline_session=") && !c.contains("Max-Age=0"))
}

async fn happy_path(backend: Backend) {
    let env = env(backend, Client::Secret, |_| {}).await;
    let base = env.app.base.clone();
    let mut b = Browser::new();
    let (_, page) = launch(&mut b, &env, ctx("p1", Some("e1")), "allow").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/app/#room={}", env.room).as_str())
    );
    let cookie = session_cookie(&page).expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );

    let session: Value = b
        .api(Method::GET, &format!("{base}/api/v1/session"), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["username"], "dr.smart");
    assert_eq!(session["launch"]["room_id"], env.room.as_str());
    assert_eq!(session["launch"]["need_patient_banner"], true);
    assert_eq!(session["idle_timeout_secs"], 900);
    let csrf = session["csrf"].as_str().unwrap().to_string();

    // The clinician joined the room from the EHR and sees the banner.
    let members = members(&env, &env.clinician.token, &env.room).await;
    let me = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["username"] == "dr.smart" || m["user_id"] == env.clinician.id.to_string());
    assert_eq!(me.expect("member")["reason"], "ehr_launch", "{members}");
    let banner: Value = b
        .api(
            Method::GET,
            &format!("{base}/api/v1/rooms/{}/patient", env.room),
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        banner,
        json!({"name": "Okafor, Chidi", "family": "Okafor", "given": "Chidi", "birth_date": "1961-07-04", "mrn": "S-1", "gender": "male"})
    );

    // Another site's page cannot use the cookie, not even to read.
    let cross = reqwest::Client::new()
        .get(format!("{base}/api/v1/rooms/{}/patient", env.room))
        .header(
            "cookie",
            format!("wardline_session={}", b.cookies["wardline_session"]),
        )
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // A cookie alone cannot change anything: the CSRF header is required.
    let url = format!("{base}/api/v1/rooms/{}/messages", env.room);
    let msg = json!({"body": "hello from the chart", "idempotency_key": "k1"});
    let refused = b.api(Method::POST, &url, Some(&msg), None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let wrong = b.api(Method::POST, &url, Some(&msg), Some("00")).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let sent = b.api(Method::POST, &url, Some(&msg), Some(&csrf)).await;
    assert_eq!(
        sent.status(),
        StatusCode::CREATED,
        "{}",
        sent.text().await.unwrap()
    );

    // Audit: the match (on MRN and birth date) and the launch, no demographics.
    let matched = audit_actions(&env, "patient-match").await;
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].1["identifiers"], json!(["mrn", "birth_date"]));
    let logins = audit_actions(&env, "auth.login").await;
    assert!(
        logins
            .iter()
            .any(|(o, d)| o == "success" && d["method"] == "smart"),
        "{logins:?}"
    );
    let launches = audit_actions(&env, "smart.launch").await;
    assert_eq!(launches.last().unwrap().0, "success");
    let text = format!("{matched:?}{launches:?}");
    assert!(
        !text.contains("Okafor") && !text.contains("1961") && !text.contains("S-1"),
        "{text}"
    );

    // need_patient_banner=false reaches the app.
    let mut b2 = Browser::new();
    let mut no_banner = ctx("p1", Some("e1"));
    no_banner.need_patient_banner = false;
    let (_, page) = launch(&mut b2, &env, no_banner, "allow").await;
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/app/#room={}&banner=0", env.room).as_str())
    );

    // Logout ends the session.
    let out = b
        .api(Method::POST, &format!("{base}/auth/logout"), None, Some(&csrf))
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = b
        .api(Method::GET, &format!("{base}/api/v1/session"), None, None)
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    env.app.stop().await;
}

async fn refusals(backend: Backend) {
    let env = env(backend, Client::Secret, |_| {}).await;
    let base = env.app.base.clone();
    // Same MRN, another birth date: refused, audited, nothing shown, no session.
    env.ehr.put(ehr_patient("p2", "S-1", Some("1961-07-05")));
    env.ehr.put(ehr_encounter("e2", "FV-1", "p2"));
    let mut b = Browser::new();
    let (_, page) = launch(&mut b, &env, ctx("p2", Some("e2")), "allow").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("Patient records do not match") && page.body.contains("HIM desk"),
        "{}",
        page.body
    );
    assert!(session_cookie(&page).is_none());
    let failures = audit_actions(&env, "patient-match-failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "failure");
    assert_eq!(failures[0].1["refusal"], "birth_date_differs");
    let members = members(&env, &env.app.admin_token, &env.room).await;
    assert!(
        !members.to_string().contains(&env.clinician.id.to_string()),
        "{members}"
    );

    // Only the MRN available: refused.
    env.ehr.put(ehr_patient("p3", "S-1", None));
    env.ehr.put(ehr_encounter("e3", "FV-1", "p3"));
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p3", Some("e3")), "allow").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        audit_actions(&env, "patient-match-failure").await[1].1["refusal"],
        "only_one_identifier"
    );

    // The encounter in context belongs to someone else.
    env.ehr.put(ehr_patient("p4", "S-4", Some("1990-01-01")));
    env.ehr.put(ehr_encounter("e4", "FV-4", "p4"));
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p1", Some("e4")), "allow").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("encounter-not-of-patient"), "{}", page.body);

    // A tampered state, and a state from another browser.
    let mut a = Browser::new();
    let id = env.ehr.launch(ctx("p1", Some("e1")));
    let request = to_consent(&mut a, &env, &id).await;
    let callback = decide(&mut a, &env, &request, "allow").await;
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(a.get(&tampered).await.status, StatusCode::BAD_REQUEST);
    let mut other = Browser::new();
    let foreign = other.get(&callback).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(
        foreign.body.contains("state-unknown") || foreign.body.contains("state-not-bound"),
        "{}",
        foreign.body
    );

    // The state is good once: replaying the callback is refused...
    let mut c = Browser::new();
    let (callback, page) = launch(&mut c, &env, ctx("p1", Some("e1")), "allow").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let replay = c.get(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("state-unknown"), "{}", replay.body);
    // ...and a used code with a fresh state is refused by the EHR's token endpoint.
    let old_code = code_of(&callback);
    let id = env.ehr.launch(ctx("p1", Some("e1")));
    let request = to_consent(&mut c, &env, &id).await;
    let fresh = decide(&mut c, &env, &request, "allow").await;
    let fresh_code = code_of(&fresh);
    let page = c.get(&fresh.replace(&fresh_code, &old_code)).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(page.body.contains("invalid_grant"), "{}", page.body);

    // An untrusted iss is refused before Wardline calls it.
    let page = Browser::new()
        .get(&format!(
            "{base}/smart/launch?iss={}&launch=x",
            urlencode("https://evil.example/fhir")
        ))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("untrusted-iss"), "{}", page.body);

    // The user declines at the EHR.
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p1", Some("e1")), "deny").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("access_denied"), "{}", page.body);

    let reasons: Vec<String> = audit_actions(&env, "smart.launch")
        .await
        .into_iter()
        .filter(|(o, _)| o == "failure")
        .map(|(_, d)| d["reason"].as_str().unwrap().to_string())
        .collect();
    for r in [
        "patient-match-failure",
        "encounter-not-of-patient",
        "state-unknown",
        "provider-error",
        "untrusted-iss",
        "denied",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} not audited in {reasons:?}");
    }
    env.app.stop().await;
}

async fn room_from_ehr_public_client_without_kid(backend: Backend) {
    let env = env(backend, Client::Public, |_| {}).await;
    env.ehr.set_behaviour(Behaviour { omit_kid: true });
    // A patient and encounter no ADT has announced.
    let mut p = ehr_patient("p9", "N-9", Some("1984-02-29"));
    p["name"] = json!([{"use": "official", "family": "Nakamura", "given": ["Yuki"]}]);
    env.ehr.put(p);
    env.ehr.put(ehr_encounter("e9", "FV-9", "p9"));
    let mut b = Browser::new();
    let (_, page) = launch(&mut b, &env, ctx("p9", Some("e9")), "allow").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let room = page
        .location
        .unwrap()
        .trim_start_matches("/app/#room=")
        .to_string();
    assert_ne!(room, env.room);
    let notes = crate::helpers::system_notes(&env.app, &env.clinician.token, &room).await;
    assert!(
        notes.iter().any(|n| n.contains("context came from the EHR")),
        "{notes:?}"
    );
    let created = audit_actions(&env, "patient-match").await;
    assert_eq!(created[0].1["created_from_ehr"], true);
    let banner: Value = env
        .app
        .get(&env.clinician.token, &format!("/api/v1/rooms/{room}/patient"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(banner["mrn"], "N-9");
    assert_eq!(banner["birth_date"], "1984-02-29");
    // The same patient launched again now matches Wardline's (EHR-made) record.
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p9", Some("e9")), "allow").await;
    assert_eq!(page.location.unwrap(), format!("/app/#room={room}"));
    env.app.stop().await;
}

/// Signs in through the provider at `issuer` (its consent page allowed); Wardline's answer.
async fn sso(b: &mut Browser, base: &str, issuer: &str) -> Page {
    let start = b.get(&format!("{base}/auth/login")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let consent = b.get(start.location.as_ref().unwrap()).await;
    let marker = "name=\"request\" value=\"";
    let at = consent.body.find(marker).expect("consent") + marker.len();
    let request = consent.body[at..].split('"').next().unwrap().to_string();
    let back = b
        .form(
            &format!("{issuer}/authorize/decision"),
            &[("request", &request), ("decision", "allow")],
        )
        .await;
    b.get(back.location.as_ref().unwrap()).await
}

async fn standalone_sign_in_and_idle_timeout(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let app = crate::helpers::spawn_app_with(backend, |cfg| {
        cfg.oidc.issuer = Some(issuer.clone());
        cfg.oidc.client_id = "wardline-sso".into();
        cfg.session.idle_timeout_secs = 2;
    })
    .await;
    let idp = wardline::demo::mock_ehr::MockEhr::serve(listener).unwrap();
    idp.register(wardline::demo::mock_ehr::MockClient {
        id: "wardline-sso".into(),
        secret: None,
        redirect_uri: format!("{}/auth/callback", app.base),
        jwks_url: None,
    });
    idp.practitioner("nurse.sso", "Nurse SSO");
    // A Wardline login equal to the provider's preferred_username is not enough: the person
    // must be linked to the provider's subject (no account takeover by a look-alike name).
    app.user("nurse.sso", &["clinician"]).await;
    let mut b = Browser::new();
    let refused = sso(&mut b, &app.base, &issuer).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("unknown-user"), "{}", refused.body);
    app.user_from(json!({"username": "n.sso", "display_name": "Nurse SSO", "roles": ["clinician"], "idp_subject": "nurse.sso"}))
        .await;
    let done = sso(&mut b, &app.base, &issuer).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/app/"));
    let session: Value = b
        .api(Method::GET, &format!("{}/api/v1/session", app.base), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["username"], "n.sso");
    assert!(session["launch"].is_null());
    // Unused for longer than the idle timeout, the session is over.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let idle = b
        .api(Method::GET, &format!("{}/api/v1/session", app.base), None, None)
        .await;
    assert_eq!(idle.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn private_key_jwt_client(backend: Backend) {
    let env = env(backend, Client::KeyJwt, |_| {}).await;
    // The JWKS the EHR registers carries the public half only.
    let jwks: Value = reqwest::get(format!("{}/smart/jwks.json", env.app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["kid"].as_str(), key["alg"].as_str()),
        (Some("RSA"), Some("wardline-1"), Some("RS384"))
    );
    assert!(key.get("d").is_none() && key.get("p").is_none(), "{jwks}");
    // The mock EHR only issues a token to a client whose assertion verifies against that JWKS.
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p1", Some("e1")), "allow").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.unwrap(), format!("/app/#room={}", env.room));
    env.app.stop().await;
}

async fn failures_are_rate_limited(backend: Backend) {
    let env = env(backend, Client::Secret, |cfg| {
        cfg.limits.auth_failures_per_minute = 2
    })
    .await;
    let url = format!(
        "{}/smart/launch?iss={}&launch=x",
        env.app.base,
        urlencode("https://evil.example/fhir")
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(Browser::new().get(&url).await.status.as_u16());
    }
    assert_eq!(statuses, [403, 403, 429, 429]);
    env.app.stop().await;
}

async fn session_ends_at_the_absolute_timeout(backend: Backend) {
    let env = env(backend, Client::Secret, |cfg| {
        cfg.session.absolute_timeout_secs = 2
    })
    .await;
    let mut b = Browser::new();
    let (_, page) = launch(&mut b, &env, ctx("p1", Some("e1")), "allow").await;
    assert!(
        session_cookie(&page).unwrap().contains("Max-Age=2"),
        "{:?}",
        page.set_cookies
    );
    let url = format!("{}/api/v1/session", env.app.base);
    assert_eq!(
        b.api(Method::GET, &url, None, None).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // However recently used, the session is over (the cookie is replayed on purpose).
    assert_eq!(
        b.api(Method::GET, &url, None, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    env.app.stop().await;
}

async fn launch_without_joining(backend: Backend) {
    let env = env(backend, Client::Secret, |cfg| cfg.smart.join_on_launch = false).await;
    // The records match, but the clinician is not on the care team and may not join from the chart.
    let (_, page) = launch(&mut Browser::new(), &env, ctx("p1", Some("e1")), "allow").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("not-member") && page.body.contains("break-glass"),
        "{}",
        page.body
    );
    assert!(session_cookie(&page).is_none());
    let failures = audit_actions(&env, "smart.launch").await;
    assert_eq!(failures.last().unwrap().1["reason"], "not-member");
    env.app.stop().await;
}

macro_rules! on_both {
    ($($name:ident),+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(crate::helpers::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(crate::helpers::Backend::Postgres).await }
        }
    )+};
}

on_both!(
    happy_path,
    private_key_jwt_client,
    refusals,
    room_from_ehr_public_client_without_kid,
    standalone_sign_in_and_idle_timeout,
    failures_are_rate_limited,
    session_ends_at_the_absolute_timeout,
    launch_without_joining
);
