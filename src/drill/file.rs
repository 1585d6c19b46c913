//! A drill file (`drills/*.toml`): read, checked, and turned into a [`Drill`]. Every mistake is reported with the
//! file, the line and the field, since the people who write runbooks are not the people who wrote this parser.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use conform_reference::escrow::EscrowState;

/// A mistake in a drill file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillFileError {
    /// The file, as named to the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// `section.key`, or the section alone.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for DrillFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.message)
    }
}

impl std::error::Error for DrillFileError {}

/// What goes wrong during the drill. Fault words, never money words (`release` and `hold` are the escrow's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The provider drops its payout confirmations: it accepted the payout and goes silent.
    DropPayoutConfirmations,
    /// The provider's API is down (503).
    ProviderOutage,
}

impl Fault {
    /// In words, for the timeline.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::DropPayoutConfirmations => "the provider drops its payout confirmations",
            Fault::ProviderOutage => "the provider's API is down (503)",
        }
    }
}

/// A runbook drill, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// Its name (`conform drill NAME`).
    pub name: String,
    /// One line: the situation.
    pub title: String,
    /// SPEC rules it is evidence for.
    pub rules: Vec<String>,
    /// The state an escrow is brought to before the fault.
    pub precondition: EscrowState,
    /// The fault injected.
    pub fault: Fault,
    /// Test-clock seconds to advance before looking for the stuck payout.
    pub advance_clock_seconds: i64,
    /// From the fault, how long detection may take.
    pub detect_deadline_ms: u64,
    /// From the fault, how long containment (the safe retry) may take.
    pub contain_deadline_ms: u64,
    /// The state the escrow must end in.
    pub recovered_state: EscrowState,
    /// From the fault, how long recovery may take.
    pub recover_deadline_ms: u64,
    /// The most money that may be lost, in minor units of the escrow's currency.
    pub max_funds_lost_minor: i128,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    title: String,
    rules: Vec<String>,
    precondition: RawPrecondition,
    fault: RawFault,
    detect: RawDetect,
    contain: RawContain,
    recover: RawRecover,
    evidence: RawEvidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecondition {
    state: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: Spanned<String>,
    what: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    advance_clock_seconds: Spanned<i64>,
    expect: Spanned<String>,
    deadline_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContain {
    action: Spanned<String>,
    expect: Spanned<String>,
    deadline_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecover {
    action: Spanned<String>,
    expect_state: Spanned<String>,
    deadline_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    max_funds_lost: Spanned<String>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `section.key` at a byte offset: the key of that line, under the nearest table header above it.
fn field_at(text: &str, offset: usize) -> String {
    let line = line_of(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let key = lines.get(line - 1).and_then(|l| l.split_once('=')).map(|(k, _)| k.trim().to_owned());
    let section = lines[..line.min(lines.len())]
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')).map(str::to_owned));
    match (section, key) {
        (Some(section), Some(key)) => format!("{section}.{key}"),
        (None, Some(key)) => key,
        (Some(section), None) => section,
        (None, None) => "(top level)".to_owned(),
    }
}

/// A state name of SPEC §1.
fn state(name: &str) -> Option<EscrowState> {
    EscrowState::ALL.into_iter().find(|s| s.to_string() == name)
}

impl Drill {
    /// Reads a drill from its text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Drill, DrillFileError> {
        let error = |span: Range<usize>, field: &str, message: String| DrillFileError {
            file: file.to_owned(),
            line: line_of(text, span.start),
            field: field.to_owned(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_owned();
            // A missing field is reported at its table: name it from the message.
            let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                Some(missing) => format!("{}.{missing}", field_at(text, start)),
                None => field_at(text, start),
            };
            DrillFileError { file: file.to_owned(), line: line_of(text, start), field, message }
        })?;
        let word = |spanned: &Spanned<String>, field: &str, allowed: &[&str]| {
            if allowed.contains(&spanned.get_ref().as_str()) {
                Ok(())
            } else {
                Err(error(
                    spanned.span(),
                    field,
                    format!("`{}` is not one of: {}", spanned.get_ref(), allowed.join(", ")),
                ))
            }
        };
        let named_state = |spanned: &Spanned<String>, field: &str| {
            state(spanned.get_ref()).ok_or_else(|| {
                let names: Vec<String> = EscrowState::ALL.iter().map(ToString::to_string).collect();
                error(
                    spanned.span(),
                    field,
                    format!("`{}` is not an escrow state ({})", spanned.get_ref(), names.join(", ")),
                )
            })
        };
        let precondition = named_state(&raw.precondition.state, "precondition.state")?;
        if precondition != EscrowState::ReleasePending {
            return Err(error(
                raw.precondition.state.span(),
                "precondition.state",
                "this drill engine brings escrows to `release_pending` only".to_owned(),
            ));
        }
        let fault = match (raw.fault.kind.get_ref().as_str(), raw.fault.what.get_ref().as_str()) {
            ("release" | "hold", _) => {
                return Err(error(
                    raw.fault.kind.span(),
                    "fault.kind",
                    "`release` and `hold` are money words; faults are outage, delay, drop".to_owned(),
                ));
            }
            ("drop", "payout-confirmations") => Fault::DropPayoutConfirmations,
            ("outage", "provider-api") => Fault::ProviderOutage,
            ("drop" | "outage" | "delay", _) => {
                return Err(error(
                    raw.fault.what.span(),
                    "fault.what",
                    format!(
                        "`{} {}` is not a fault this engine injects (drop payout-confirmations, outage provider-api)",
                        raw.fault.kind.get_ref(),
                        raw.fault.what.get_ref()
                    ),
                ));
            }
            (other, _) => {
                return Err(error(
                    raw.fault.kind.span(),
                    "fault.kind",
                    format!("`{other}` is not a fault word (outage, delay, drop)"),
                ));
            }
        };
        if *raw.detect.advance_clock_seconds.get_ref() < 0 {
            return Err(error(
                raw.detect.advance_clock_seconds.span(),
                "detect.advance_clock_seconds",
                "time only moves forward".to_owned(),
            ));
        }
        word(&raw.detect.expect, "detect.expect", &["listed-as-stuck"])?;
        word(&raw.contain.action, "contain.action", &["retry-payout"])?;
        word(&raw.contain.expect, "contain.expect", &["same-idempotency-key"])?;
        word(&raw.recover.action, "recover.action", &["provider-confirms"])?;
        let recovered_state = named_state(&raw.recover.expect_state, "recover.expect_state")?;
        let lost = raw.evidence.max_funds_lost.get_ref();
        let max_funds_lost_minor = lost.parse::<i128>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            error(
                raw.evidence.max_funds_lost.span(),
                "evidence.max_funds_lost",
                format!("`{lost}` is not a whole, non-negative amount of minor units"),
            )
        })?;
        if raw.name.get_ref().is_empty() {
            return Err(error(raw.name.span(), "name", "a drill needs a name".to_owned()));
        }
        Ok(Drill {
            name: raw.name.into_inner(),
            title: raw.title,
            rules: raw.rules,
            precondition,
            fault,
            advance_clock_seconds: raw.detect.advance_clock_seconds.into_inner(),
            detect_deadline_ms: raw.detect.deadline_ms,
            contain_deadline_ms: raw.contain.deadline_ms,
            recovered_state,
            recover_deadline_ms: raw.recover.deadline_ms,
            max_funds_lost_minor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUCK: &str = include_str!("../../drills/stuck-release.toml");

    #[test]
    fn the_shipped_drill_reads() {
        let drill = Drill::parse("drills/stuck-release.toml", STUCK).expect("valid");
        assert_eq!(drill.fault, Fault::DropPayoutConfirmations);
        assert_eq!(drill.recovered_state, EscrowState::Released);
    }

    #[test]
    fn a_wrong_word_names_file_line_and_field() {
        let text = STUCK.replace("kind = \"drop\"", "kind = \"release\"");
        let error = Drill::parse("drills/x.toml", &text).expect_err("money word");
        let line = text.lines().position(|l| l.starts_with("kind = ")).expect("line") + 1;
        assert_eq!((error.line, error.field.as_str()), (line, "fault.kind"), "{error}");
        assert!(error.to_string().starts_with(&format!("drills/x.toml:{line}: fault.kind: ")), "{error}");
    }

    #[test]
    fn a_wrong_type_and_a_missing_field_are_located() {
        let text = STUCK.replace("deadline_ms = 5000\n\n[contain]", "deadline_ms = \"soon\"\n\n[contain]");
        let error = Drill::parse("d.toml", &text).expect_err("type");
        assert_eq!(error.field, "detect.deadline_ms", "{error}");
        let text = STUCK.replace("expect_state = \"released\"\n", "");
        let error = Drill::parse("d.toml", &text).expect_err("missing");
        assert_eq!(error.field, "recover.expect_state", "{error}");
    }
}
