//! The MLLP listener: TCP (optionally TLS) connections from interface engines, framed
//! `0x0B … 0x1C 0x0D`. A connection is a loop of read → reassemble frames (the `mllp` crate's
//! decoder, which handles split and coalesced reads) → answer each frame in order. It knows
//! nothing of HL7 beyond framing; [`Hl7::handle`] does the rest.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ack::{self, Verdict};
use super::ingest::Hl7;

/// Loads the listener's TLS certificate chain and key (PEM).
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("building the MLLP TLS configuration")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `shutdown`, then lets each finish the message it is on.
pub async fn serve(
    listener: TcpListener,
    hl7: Arc<Hl7>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(hl7.cfg.max_connections.max(1)));
    let ids = AtomicU64::new(0);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("mllp", conn = id, peer = %peer);
        let hl7 = hl7.clone();
        let tls = tls.clone();
        let stop = shutdown.clone();
        tasks.spawn(
            async move {
                let _permit = permit;
                metrics::gauge!("wardline_mllp_connections").increment(1.0);
                let result = match tls {
                    None => connection(stream, peer, &hl7, &stop).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => connection(s, peer, &hl7, &stop).await,
                        Err(e) => Err(e),
                    },
                };
                metrics::gauge!("wardline_mllp_connections").decrement(1.0);
                match result {
                    Ok(n) => tracing::info!(messages = n, "MLLP connection closed"),
                    Err(e) => tracing::info!(error = %e, "MLLP connection ended"),
                }
            }
            .instrument(span),
        );
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // In-flight messages finish and are answered; idle connections close at once.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("MLLP connections still open after 10 s; closing them");
    }
}

/// Serves one connection; returns how many messages it answered.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    hl7: &Hl7,
    shutdown: &CancellationToken,
) -> std::io::Result<u64> {
    let max = hl7.cfg.max_frame_bytes.max(64);
    let idle = Duration::from_secs(hl7.cfg.idle_timeout_secs.max(1));
    let mut decoder = mllp::Decoder::with_max_frame_size(max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut answered = 0u64;
    let source = peer.ip().to_string();
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return Ok(answered),
            r = tokio::time::timeout(idle, stream.read(&mut buf)) => r,
        };
        let n = match read {
            Err(_) => {
                tracing::info!("MLLP connection idle; closing");
                return Ok(answered);
            }
            Ok(r) => r?,
        };
        if n == 0 {
            return Ok(answered);
        }
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            match frame {
                // The decoder checks the size only while a frame is incomplete: a whole oversized
                // frame arriving in one read is refused here.
                Ok(payload) if payload.len() > max => {
                    return too_large(&mut stream, max).await.map(|()| answered);
                }
                Ok(payload) => {
                    let ack = hl7.handle(&payload, Some(source.clone()), None).await;
                    stream.write_all(&mllp::frame(ack.as_bytes())).await?;
                    answered += 1;
                }
                Err(mllp::Error::FrameTooLarge { .. }) => {
                    return too_large(&mut stream, max).await.map(|()| answered);
                }
                Err(e) => {
                    metrics::counter!("wardline_mllp_framing_errors_total").increment(1);
                    tracing::warn!(error = %e, "bytes outside an MLLP frame discarded");
                }
            }
        }
        stream.flush().await?;
    }
}

async fn too_large<S: AsyncWrite + Unpin>(stream: &mut S, max: usize) -> std::io::Result<()> {
    metrics::counter!("wardline_mllp_framing_errors_total").increment(1);
    tracing::warn!(max, "MLLP frame larger than the limit; answering AR and closing");
    let verdict = Verdict::Reject {
        code: "100",
        location: None,
        reason: format!("the frame is larger than {max} bytes"),
    };
    let ack = ack::build(None, &verdict, "W0", chrono::Utc::now());
    stream.write_all(&mllp::frame(ack.as_bytes())).await?;
    stream.shutdown().await
}
