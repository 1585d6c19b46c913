//! `contracts/threats.toml`: the threat model, so that a finding can be reported with what it exposes and every
//! threat can be shown to be guarded by some rule.

use serde::Deserialize;

/// The threats, in file order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threats {
    /// The `[[threat]]` tables; the contract tests require exactly `T01`..`T15`.
    pub threat: Vec<Threat>,
}

/// One threat.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    /// The id rules and other contracts refer to, e.g. `T01`.
    pub id: String,
    /// A short name for reports.
    pub title: String,
    /// What an attacker does, for readers deciding whether a finding matters.
    pub description: String,
    /// The rules that guard against it; must mirror the rules' own `threats` lists, so either side can be trusted.
    pub rules: Vec<String>,
}

super::contract_file!(Threats, "threats.toml", parse_toml, include_str!("../../contracts/threats.toml"));

impl Threats {
    /// The threat with this id, if any.
    pub fn get(&self, id: &str) -> Option<&Threat> {
        self.threat.iter().find(|threat| threat.id == id)
    }

    /// Every threat, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Threat> {
        self.threat.iter()
    }

    /// How many threats the file has.
    pub fn len(&self) -> usize {
        self.threat.len()
    }

    /// Whether the file lists no threat.
    pub fn is_empty(&self) -> bool {
        self.threat.is_empty()
    }
}

impl<'a> IntoIterator for &'a Threats {
    type Item = &'a Threat;
    type IntoIter = std::slice::Iter<'a, Threat>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
