//! What the HL7 tests share: the fixtures, a minimal MLLP client as an interface engine would
//! be, an ACK field reader, the clinicians the fixtures name, and a server with unit teams.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};

/// A fixture message by file name.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/hl7/{name}.hl7", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A minimal MLLP client, as an interface engine would be.
pub struct Mllp {
    stream: TcpStream,
    decoder: mllp::Decoder,
}

impl Mllp {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("MLLP connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            decoder: mllp::Decoder::new(),
        }
    }

    /// Writes raw bytes (framing is the caller's business).
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("MLLP write");
    }

    /// The next ACK, within 10 s; `None` when the server closed the connection.
    pub async fn ack(&mut self) -> Option<String> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return Some(String::from_utf8(frame.expect("well-framed ACK")).expect("UTF-8 ACK"));
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf))
                .await
                .expect("an ACK within 10 s")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.decoder.push(&buf[..n]);
        }
    }

    /// Sends one message and waits for its ACK.
    pub async fn send(&mut self, er7: &str) -> String {
        self.write(&mllp::frame(er7.as_bytes())).await;
        self.ack().await.expect("an ACK")
    }
}

/// A field of a segment of an ER7 text (`seg`, field number as in HL7, MSH-aware).
pub fn field(er7: &str, seg: &str, n: usize) -> String {
    let line = er7
        .split('\r')
        .find(|l| l.starts_with(seg))
        .unwrap_or_else(|| panic!("no {seg} in {er7:?}"));
    let offset = usize::from(seg == "MSH");
    line.split('|').nth(n - offset).unwrap_or_default().to_string()
}

/// The three clinicians of the fixtures, with the NPIs the messages carry.
#[allow(dead_code)]
pub struct Staff {
    pub osei: TestUser,
    pub lindqvist: TestUser,
    pub patel: TestUser,
    pub kim: TestUser,
}

pub async fn staff(app: &TestApp) -> Staff {
    let mk = |name: &'static str, npi: Option<&'static str>| async move {
        let mut body = serde_json::json!({"username": name, "display_name": name, "roles": ["clinician"]});
        if let Some(npi) = npi {
            body["npi"] = npi.into();
        }
        app.user_from(body).await
    };
    Staff {
        osei: mk("dr.osei", Some("1234567893")).await,
        lindqvist: mk("dr.lindqvist", Some("1679576722")).await,
        patel: mk("rn.patel", None).await,
        kim: mk("rn.kim", None).await,
    }
}

/// A server whose unit teams are 4W → rn.patel and 5E → rn.kim; rooms go read-only right at
/// discharge so the schedule can be observed without waiting.
pub async fn hl7_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.hl7.unit_teams.insert("4W".into(), vec!["rn.patel".into()]);
        c.hl7.unit_teams.insert("5E".into(), vec!["rn.kim".into()]);
        c.hl7.discharge_grace_secs = 0;
    })
    .await
}
