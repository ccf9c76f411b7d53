//! The escalation ladder without I/O: after the person holding a tier lets an urgent message go
//! unacknowledged for the service's timeout, the next tier with someone on it is notified, then
//! the service's fallback, then nobody (exhausted, shown in the room).

/// The tier number that stands for the fallback person (above every real tier).
pub fn fallback_tier(tiers: u32) -> u32 {
    tiers + 1
}

/// What happens when an escalation at `tier` times out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Notify the holder of this tier.
    Notify {
        /// Tier reached.
        tier: u32,
        /// Who holds it now.
        user_id: String,
    },
    /// Notify the service's fallback.
    Fallback {
        /// The fallback user.
        user_id: String,
    },
    /// Nobody is left to notify.
    Exhausted,
}

/// The next step after `tier` timed out, with `tiers` to climb, `holder(t)` the current holder
/// of tier t, and the fallback user (already resolved to an id, if configured and active).
pub fn next_step(
    tier: u32,
    tiers: u32,
    holder: impl Fn(u32) -> Option<String>,
    fallback: Option<&str>,
) -> Step {
    for t in tier + 1..=tiers {
        if let Some(user_id) = holder(t) {
            return Step::Notify { tier: t, user_id };
        }
    }
    match fallback {
        Some(f) if tier < fallback_tier(tiers) => Step::Fallback {
            user_id: f.to_string(),
        },
        _ => Step::Exhausted,
    }
}

/// When the step taken at `now_ms` times out.
pub fn due_after(now_ms: i64, timeout_ms: i64) -> i64 {
    now_ms.saturating_add(timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on<'a>(tiers: &'a [(u32, &'a str)]) -> impl Fn(u32) -> Option<String> + 'a {
        move |t| tiers.iter().find(|(n, _)| *n == t).map(|(_, u)| u.to_string())
    }

    #[test]
    fn the_ladder_climbs_tiers_then_the_fallback_then_stops() {
        let roster = [(1, "a"), (2, "b"), (3, "c")];
        assert_eq!(
            next_step(1, 3, on(&roster), Some("chief")),
            Step::Notify {
                tier: 2,
                user_id: "b".into()
            }
        );
        assert_eq!(
            next_step(2, 3, on(&roster), Some("chief")),
            Step::Notify {
                tier: 3,
                user_id: "c".into()
            }
        );
        assert_eq!(
            next_step(3, 3, on(&roster), Some("chief")),
            Step::Fallback {
                user_id: "chief".into()
            }
        );
        assert_eq!(
            next_step(fallback_tier(3), 3, on(&roster), Some("chief")),
            Step::Exhausted
        );
        assert_eq!(next_step(3, 3, on(&roster), None), Step::Exhausted);
    }

    #[test]
    fn empty_tiers_are_skipped_and_the_policy_limits_the_climb() {
        let roster = [(1, "a"), (3, "c")];
        assert_eq!(
            next_step(1, 3, on(&roster), None),
            Step::Notify {
                tier: 3,
                user_id: "c".into()
            }
        );
        assert_eq!(
            next_step(1, 2, on(&roster), Some("chief")),
            Step::Fallback {
                user_id: "chief".into()
            }
        );
        assert_eq!(next_step(1, 1, on(&roster), None), Step::Exhausted);
    }

    #[test]
    fn due_times_add_the_timeout() {
        assert_eq!(due_after(1_000, 300_000), 301_000);
        assert_eq!(due_after(i64::MAX - 1, 300_000), i64::MAX);
    }
}
