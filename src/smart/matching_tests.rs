use super::*;

fn id(mrn: Option<&str>, dob: Option<&str>, family: Option<&str>, given: Option<&str>) -> Identity {
    Identity {
        mrn: mrn.map(str::to_string),
        birth_date: dob.map(str::to_string),
        family: family.map(str::to_string),
        given: given.map(str::to_string),
    }
}

const STRICT: Policy = Policy {
    name_as_second: false,
};
const NAMES: Policy = Policy { name_as_second: true };

fn ours() -> Identity {
    id(
        Some("MRN-100234"),
        Some("1958-03-14"),
        Some("Müller"),
        Some("Anna Maria"),
    )
}

#[test]
fn mrn_and_birth_date_agreeing_open_the_room() {
    let ehr = id(Some("MRN-100234"), Some("1958-03-14"), None, None);
    assert_eq!(
        decide(&ehr, &ours(), STRICT),
        Verdict::Match([Identifier::Mrn, Identifier::BirthDate])
    );
    assert_eq!(
        decide(&ehr, &ours(), NAMES),
        Verdict::Match([Identifier::Mrn, Identifier::BirthDate])
    );
}

#[test]
fn the_mrn_must_be_there_and_agree() {
    for (ehr, why) in [
        (
            id(None, Some("1958-03-14"), Some("Müller"), Some("Anna")),
            Refusal::MrnMissing,
        ),
        (
            id(Some("  "), Some("1958-03-14"), None, None),
            Refusal::MrnMissing,
        ),
        (
            id(Some("MRN-999"), Some("1958-03-14"), Some("Müller"), Some("Anna")),
            Refusal::MrnDiffers,
        ),
    ] {
        assert_eq!(decide(&ehr, &ours(), NAMES), Verdict::Refuse(why), "{ehr:?}");
    }
    let no_mrn_here = id(None, Some("1958-03-14"), None, None);
    assert_eq!(
        decide(&ours(), &no_mrn_here, NAMES),
        Verdict::Refuse(Refusal::MrnMissing)
    );
}

#[test]
fn a_birth_date_that_differs_refuses_even_when_the_name_agrees() {
    let ehr = id(
        Some("MRN-100234"),
        Some("1958-03-15"),
        Some("Müller"),
        Some("Anna"),
    );
    assert_eq!(
        decide(&ehr, &ours(), STRICT),
        Verdict::Refuse(Refusal::BirthDateDiffers)
    );
    assert_eq!(
        decide(&ehr, &ours(), NAMES),
        Verdict::Refuse(Refusal::BirthDateDiffers)
    );
}

#[test]
fn the_mrn_alone_is_one_identifier() {
    let ehr = id(Some("MRN-100234"), None, Some("Müller"), Some("Anna"));
    assert_eq!(
        decide(&ehr, &ours(), STRICT),
        Verdict::Refuse(Refusal::OnlyOneIdentifier)
    );
    // A partial birth date is not precise enough to identify.
    let partial = id(Some("MRN-100234"), Some("1958-03"), None, None);
    assert_eq!(
        decide(&partial, &ours(), STRICT),
        Verdict::Refuse(Refusal::OnlyOneIdentifier)
    );
    let ours_without_dob = id(Some("MRN-100234"), None, None, None);
    let full = id(Some("MRN-100234"), Some("1958-03-14"), None, None);
    assert_eq!(
        decide(&full, &ours_without_dob, NAMES),
        Verdict::Refuse(Refusal::OnlyOneIdentifier)
    );
}

#[test]
fn where_allowed_the_normalised_name_is_the_second_identifier() {
    for (family, given) in [
        ("MÜLLER", "anna"),
        ("Mu\u{308}ller", "Anna"),
        ("müller", "ANNA-LENA"),
    ] {
        let ehr = id(Some("MRN-100234"), None, Some(family), Some(given));
        let expected = if given == "ANNA-LENA" {
            Verdict::Refuse(Refusal::NameDiffers)
        } else {
            Verdict::Match([Identifier::Mrn, Identifier::Name])
        };
        assert_eq!(decide(&ehr, &ours(), NAMES), expected, "{family} {given}");
    }
    let other = id(Some("MRN-100234"), None, Some("Miller"), Some("Anna"));
    assert_eq!(
        decide(&other, &ours(), NAMES),
        Verdict::Refuse(Refusal::NameDiffers)
    );
    // With a birth date agreeing, a name that differs is still a conflict when names are compared.
    let conflict = id(
        Some("MRN-100234"),
        Some("1958-03-14"),
        Some("Miller"),
        Some("Anna"),
    );
    assert_eq!(
        decide(&conflict, &ours(), NAMES),
        Verdict::Refuse(Refusal::NameDiffers)
    );
    assert_eq!(
        decide(&conflict, &ours(), STRICT),
        Verdict::Match([Identifier::Mrn, Identifier::BirthDate])
    );
}

#[test]
fn names_normalise_accents_case_and_punctuation() {
    assert_eq!(normalise("Müller-Lüdenscheidt"), "MULLERLUDENSCHEIDT");
    assert_eq!(normalise("O'Brien"), "OBRIEN");
    assert_eq!(normalise("Ｎｇｕｙễｎ"), "NGUYEN");
    assert_eq!(normalise(" 12 "), "");
}

#[test]
fn every_combination_needs_two_agreeing_and_none_differing() {
    // Exhaustive over each identifier being absent, equal or different on the EHR side.
    #[derive(Clone, Copy, Debug)]
    enum S {
        Absent,
        Same,
        Other,
    }
    let all = [S::Absent, S::Same, S::Other];
    for mrn in all {
        for dob in all {
            for name in all {
                for policy in [STRICT, NAMES] {
                    let pick = |s: S, same: &str, other: &str| match s {
                        S::Absent => None,
                        S::Same => Some(same.to_string()),
                        S::Other => Some(other.to_string()),
                    };
                    let ehr = Identity {
                        mrn: pick(mrn, "MRN-100234", "MRN-1"),
                        birth_date: pick(dob, "1958-03-14", "1960-01-01"),
                        family: pick(name, "Müller", "Miller"),
                        given: Some("Anna".into()),
                    };
                    let v = decide(&ehr, &ours(), policy);
                    let names_count = policy.name_as_second;
                    let conflict = matches!(mrn, S::Other)
                        || matches!(dob, S::Other)
                        || (names_count && matches!(name, S::Other));
                    let agreeing = usize::from(matches!(mrn, S::Same))
                        + usize::from(matches!(dob, S::Same))
                        + usize::from(names_count && matches!(name, S::Same));
                    let open = matches!(mrn, S::Same) && !conflict && agreeing >= 2;
                    assert_eq!(
                        matches!(v, Verdict::Match(_)),
                        open,
                        "{mrn:?} {dob:?} {name:?} {policy:?} → {v:?}"
                    );
                }
            }
        }
    }
}
