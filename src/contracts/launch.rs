//! `contracts/launch-criteria.toml`: what must be proven before a target may launch, read by the launch gate.

use serde::Deserialize;

/// The launch criteria and the gate's policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchCriteria {
    /// Who may own a criterion; a criterion's owner must be one of them, so every criterion has someone to ask.
    pub owners: Vec<String>,
    /// How the gate decides.
    pub gate: Gate,
    /// The `[[criterion]]` tables, in file order.
    pub criterion: Vec<Criterion>,
}

/// The gate's policy (SPEC §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// What an unverified blocking criterion counts as; SPEC requires `"fail"`, so silence never passes.
    pub unverified_blocking: String,
    /// The fields a waiver must carry to be accepted (reason, approver role, expiry), so waivers stay accountable.
    pub waiver_fields: Vec<String>,
    /// The rules the gate itself carries.
    pub rules: Vec<String>,
}

/// One launch criterion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// The id the gate reports by, e.g. `LC-LEDGER`.
    pub id: String,
    /// One line for the gate's report.
    pub title: String,
    /// Who answers for it; one of [`LaunchCriteria::owners`].
    pub owner: String,
    /// Whether the gate fails while this criterion is not met (or not verified, see [`Gate::unverified_blocking`]).
    pub blocking: bool,
    /// The item of the seed report's section 5 this criterion answers, so every item is traceably covered.
    pub seed_item: Option<u8>,
    /// What proves it.
    pub evidence: Evidence,
}

/// What proves a criterion: results the gate looks up in the run's reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Rules whose results count.
    pub rules: Vec<String>,
    /// Tags of cases whose results count.
    pub tags: Vec<String>,
    /// Suites that must have run (`properties`, `features`, `matrix`, `realtime`, `drills`, optionally `/name`).
    pub suites: Vec<String>,
}

super::contract_file!(
    LaunchCriteria,
    "launch-criteria.toml",
    parse_toml,
    include_str!("../../contracts/launch-criteria.toml")
);

impl LaunchCriteria {
    /// The criterion with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Criterion> {
        self.criterion.iter().find(|criterion| criterion.id == id)
    }

    /// Every criterion, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Criterion> {
        self.criterion.iter()
    }

    /// The criteria the gate fails on.
    pub fn blocking(&self) -> impl Iterator<Item = &Criterion> {
        self.criterion.iter().filter(|criterion| criterion.blocking)
    }
}

impl<'a> IntoIterator for &'a LaunchCriteria {
    type Item = &'a Criterion;
    type IntoIter = std::slice::Iter<'a, Criterion>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
