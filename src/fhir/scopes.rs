//! SMART App Launch v2 scopes (`system/Encounter.cruds`, `user/Communication.rs`, v1's `.read`
//! and `.write`) and what a bearer token may do with them.
//!
//! A token's FHIR rights are the SMART scopes written on it, cut down to what its user's roles
//! allow (the role *ceiling*); a token with no SMART scopes gets the whole ceiling. Keeping the
//! ceiling in one pure function makes "which role may touch which resource" reviewable in one
//! place and testable without I/O.

use std::fmt;

use wardline_fhir_wire::Kind;

use crate::auth::Role;

/// Whose data a scope covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    /// The patient in launch context only (SMART launch sessions).
    Patient,
    /// What the signed-in user may see: rooms they belong to.
    User,
    /// Everything on the server: back-end systems.
    System,
}

/// One FHIR interaction, as SMART v2 letters name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `c`: create.
    Create,
    /// `r`: read by id.
    Read,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search.
    Search,
}

impl Op {
    fn bit(self) -> u8 {
        match self {
            Op::Create => 1,
            Op::Read => 2,
            Op::Update => 4,
            Op::Delete => 8,
            Op::Search => 16,
        }
    }
}

/// A parsed scope. `resource: None` is the `*` wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// Whose data.
    pub context: Context,
    /// Which type; `None` for all.
    pub resource: Option<Kind>,
    ops: u8,
}

const ALL_OPS: u8 = 31;
const READ_OPS: u8 = 2 | 16;
const WRITE_OPS: u8 = 1 | 4 | 8;

impl Scope {
    /// Parses one scope; `None` for anything that is not a FHIR resource scope (`openid`,
    /// `launch`, role names...), so mixed scope lists can be filtered with it.
    pub fn parse(s: &str) -> Option<Scope> {
        let (context, rest) = s.split_once('/')?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return None,
        };
        let (resource, perms) = rest.split_once('.')?;
        let resource = match resource {
            "*" => None,
            name => Some(Kind::parse(name)?),
        };
        let ops = match perms {
            "read" => READ_OPS,
            "write" => WRITE_OPS,
            "*" => ALL_OPS,
            letters => v2_ops(letters)?,
        };
        Some(Scope {
            context,
            resource,
            ops,
        })
    }

    /// Whether this scope allows `op` on `kind`.
    pub fn allows(&self, kind: Kind, op: Op) -> bool {
        self.resource.is_none_or(|r| r == kind) && self.ops & op.bit() != 0
    }

    /// Whether everything this scope grants is also granted by `wider`.
    pub fn within(&self, wider: &Scope) -> bool {
        self.context <= wider.context
            && (wider.resource.is_none() || wider.resource == self.resource)
            && self.ops & !wider.ops == 0
    }
}

/// v2 permissions: a non-empty subsequence of `cruds`, in that order.
fn v2_ops(letters: &str) -> Option<u8> {
    let mut ops = 0;
    let mut rest = "cruds";
    for ch in letters.chars() {
        let at = rest.find(ch)?;
        rest = &rest[at + 1..];
        ops |= match ch {
            'c' => 1,
            'r' => 2,
            'u' => 4,
            'd' => 8,
            _ => 16,
        };
    }
    (ops != 0).then_some(ops)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        };
        let resource = self.resource.map_or("*", Kind::as_str);
        let letters: String = "cruds"
            .chars()
            .enumerate()
            .filter(|(i, _)| self.ops & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect();
        write!(f, "{context}/{resource}.{letters}")
    }
}

/// The most a role may be granted (SPEC §8 roles): clinicians see and write what their rooms
/// hold; integrations (interface engines, EHRs) work server-wide; schedulers keep rosters and the
/// directory; auditors read the audit trail. Admins manage users and tokens, not clinical data.
pub fn ceiling(roles: &[Role]) -> Vec<Scope> {
    // Computed for every authenticated FHIR request: static scope texts, no formatting.
    let mut out = Vec::new();
    for role in roles {
        let granted = match role {
            Role::Clinician => &[
                "user/Patient.rs",
                "user/Encounter.rs",
                "user/CareTeam.rs",
                "user/Communication.crs",
                "user/Practitioner.rs",
                "user/PractitionerRole.rs",
            ][..],
            Role::Integration => &[
                "system/Patient.crus",
                "system/Encounter.crus",
                "system/Practitioner.crus",
                "system/CareTeam.rs",
                "system/Communication.crs",
                "system/PractitionerRole.cruds",
            ][..],
            Role::Scheduler => &["system/PractitionerRole.cruds", "system/Practitioner.rs"][..],
            Role::Auditor => &["user/AuditEvent.rs"][..],
            Role::Admin => &[][..],
        };
        out.extend(granted.iter().filter_map(|s| Scope::parse(s)));
    }
    out
}

/// What a token may do over FHIR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    scopes: Vec<Scope>,
}

impl Grant {
    /// The grant for a token carrying `requested` SMART scopes (empty: none written on it) whose
    /// user holds `roles`: each requested scope survives only if some ceiling scope covers it.
    pub fn new(roles: &[Role], requested: &[Scope]) -> Grant {
        let ceiling = ceiling(roles);
        let scopes = if requested.is_empty() {
            ceiling
        } else {
            requested
                .iter()
                .filter(|s| ceiling.iter().any(|c| s.within(c)))
                .cloned()
                .collect()
        };
        Grant { scopes }
    }

    /// The widest context in which `op` on `kind` is allowed, or `None` (403).
    pub fn permits(&self, kind: Kind, op: Op) -> Option<Context> {
        self.scopes
            .iter()
            .filter(|s| s.allows(kind, op))
            .map(|s| s.context)
            .max()
    }

    /// The granted scopes, for error messages and introspection.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        Scope::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn v2_and_v1_scopes_parse() {
        assert!(s("system/Encounter.cruds").allows(Kind::Encounter, Op::Delete));
        assert!(s("user/Communication.rs").allows(Kind::Communication, Op::Search));
        assert!(!s("user/Communication.rs").allows(Kind::Communication, Op::Create));
        assert!(!s("user/Communication.rs").allows(Kind::Patient, Op::Read));
        assert!(s("patient/*.read").allows(Kind::Patient, Op::Search));
        assert!(!s("patient/*.read").allows(Kind::Patient, Op::Update));
        assert!(s("user/Patient.write").allows(Kind::Patient, Op::Update));
        assert!(s("system/*.*").allows(Kind::AuditEvent, Op::Create));
        assert_eq!(s("user/Patient.cu").to_string(), "user/Patient.cu");
        assert_eq!(s("system/*.read").to_string(), "system/*.rs");
    }

    /// Every scope text in the ceiling parses: a typo there would silently grant less.
    #[test]
    fn every_ceiling_scope_parses() {
        let counts = [
            (Role::Clinician, 6),
            (Role::Integration, 6),
            (Role::Scheduler, 2),
            (Role::Auditor, 1),
            (Role::Admin, 0),
        ];
        for (role, n) in counts {
            assert_eq!(ceiling(&[role]).len(), n, "{role:?}");
        }
    }

    #[test]
    fn malformed_scopes_are_not_scopes() {
        for bad in [
            "openid",
            "launch",
            "fhirUser",
            "clinician",
            "user/Patient",
            "user/Patient.",
            "user/Patient.sr",
            "user/Patient.rr",
            "user/Patient.x",
            "admin/Patient.r",
            "user/Observation.r",
            "user/patient.r",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn within_compares_context_type_and_letters() {
        assert!(s("user/Patient.r").within(&s("user/Patient.rs")));
        assert!(s("user/Patient.r").within(&s("system/*.cruds")));
        assert!(!s("system/Patient.r").within(&s("user/Patient.rs")));
        assert!(!s("user/Patient.c").within(&s("user/Patient.rs")));
        assert!(!s("user/*.r").within(&s("user/Patient.rs")));
    }

    #[test]
    fn a_token_gets_its_scopes_cut_to_its_roles() {
        let clinician = [Role::Clinician];
        let g = Grant::new(&clinician, &[]);
        assert_eq!(g.permits(Kind::Patient, Op::Read), Some(Context::User));
        assert_eq!(g.permits(Kind::Communication, Op::Create), Some(Context::User));
        assert_eq!(g.permits(Kind::Patient, Op::Update), None);
        assert_eq!(g.permits(Kind::AuditEvent, Op::Search), None);

        // Asking for more than the roles allow grants only the allowed part.
        let g = Grant::new(&clinician, &[s("system/Patient.r"), s("user/Patient.r")]);
        assert_eq!(g.permits(Kind::Patient, Op::Read), Some(Context::User));
        assert_eq!(g.permits(Kind::Patient, Op::Search), None);

        let both = [Role::Clinician, Role::Integration];
        assert_eq!(
            Grant::new(&both, &[]).permits(Kind::Patient, Op::Read),
            Some(Context::System)
        );
        assert_eq!(
            Grant::new(&[Role::Admin], &[]).permits(Kind::Patient, Op::Read),
            None
        );
        assert_eq!(
            Grant::new(&[Role::Auditor], &[]).permits(Kind::AuditEvent, Op::Search),
            Some(Context::User)
        );
        assert_eq!(Grant::new(&[], &[s("system/*.cruds")]), Grant::default());
    }
}
