//! Logs and metrics. Logs are JSON lines by default and carry ids, routes and statuses only:
//! message text, names and other patient data are never logged (request bodies and query strings
//! are not recorded at all).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber once (later calls, in tests, are no-ops) and the
/// panic hook ([`log_panic`]).
pub fn init_logging(format: LogFormat, level: &str) {
    std::panic::set_hook(Box::new(log_panic));
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The panic hook: Rust's default one prints a panic's message to stderr, and a message built
/// from what a handler was working on (an MRN, a name) would put patient data in the logs. A
/// panic is logged instead as an error event like any other line, with the thread and the source
/// location, which are enough to find the code, and without its message.
pub fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let location = info
        .location()
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    tracing::error!(%location, %thread, "panicked (the message is not logged: it may hold patient data)");
}

/// The process-wide Prometheus recorder. The `metrics` facade is global by design, so several
/// servers in one process (tests, multi-node tests) share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours simply stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A panic whose message carries an MRN is logged with its location and thread, and
    /// without the message.
    #[test]
    fn a_panic_is_logged_without_its_message() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(super::log_panic));
        let outcome = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| panic!("while reading MRN-12345"))
        });
        std::panic::set_hook(previous);
        assert!(outcome.is_err(), "the closure panicked");
        let logged = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("UTF-8");
        assert!(logged.contains("panicked"), "{logged}");
        assert!(
            logged.contains("src/telemetry.rs"),
            "the location is logged: {logged}"
        );
        assert!(!logged.contains("MRN-12345"), "the message is not: {logged}");
    }
}
