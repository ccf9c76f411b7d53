//! Notification email over SMTP (lettre, rustls with ring). The email says only that an urgent
//! message awaits and links to the room: no patient name, no message text, no service detail
//! beyond the role, so it is safe on any phone's lock screen.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{SmtpConfig, SmtpSecurity};
use crate::error::{Error, Result};

/// Subject and plain-text body of a notification for `link`.
pub fn compose(link: &str, escalated: bool) -> (String, String) {
    let subject = if escalated {
        "Wardline: an urgent message was escalated to you".to_string()
    } else {
        "Wardline: an urgent message is waiting for you".to_string()
    };
    let body = format!(
        "An urgent message is waiting for your acknowledgement in Wardline.\n\nOpen it:\n{link}\n\n\
         This email contains no patient information. Do not reply to it.\n"
    );
    (subject, body)
}

/// An SMTP client for one relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for the configured relay, or `None` when no host is set.
    pub fn from_config(cfg: &SmtpConfig) -> Result<Option<Self>> {
        let Some(host) = cfg.host.as_deref() else {
            return Ok(None);
        };
        let bad = |e: lettre::transport::smtp::Error| Error::Invalid(format!("oncall.smtp: {e}"));
        let mut builder = match cfg.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(bad)?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(bad)?,
        }
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let from = cfg
            .from
            .parse()
            .map_err(|_| Error::Invalid("oncall.smtp.from is not an email address".into()))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends one notification to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<()> {
        let message = build(&self.from, to, subject, body)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("SMTP: {e}")))
    }
}

/// The message: plain 7-bit text when its lines are short enough, so the link reaches every mail
/// client unwrapped (quoted-printable otherwise, which clients decode).
fn build(from: &Mailbox, to: &str, subject: &str, body: &str) -> Result<Message> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| Error::Invalid("the recipient's email address is not valid".into()))?;
    let body = Body::new_with_encoding(body.to_string(), ContentTransferEncoding::SevenBit)
        .unwrap_or_else(Body::new);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| Error::Internal(format!("email: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_carries_only_the_link() {
        let (subject, body) = compose("https://wardline.example/app/#room=0192", true);
        assert!(subject.contains("escalated"));
        assert!(body.contains("https://wardline.example/app/#room=0192"));
        assert!(body.contains("no patient information"));
        let from: Mailbox = "Wardline <wardline@localhost>".parse().unwrap();
        let message = build(&from, "dr.a@hospital.test", &subject, &body).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("https://wardline.example/app/#room=0192\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
    }
}
