//! `contracts/rules.toml`: the catalog of SPEC rules, which reports use to name each rule by its title and which
//! every other contract file refers to by id.

use serde::Deserialize;

/// The rule catalog, in file order (which is the order reports list rules in).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The `[[rule]]` tables. Ids are meant to be unique; the contract tests check it rather than the parser, so
    /// that a duplicate is reported with every other catalog problem at once.
    pub rule: Vec<Rule>,
}

/// One rule of the catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The id other files and reports refer to, e.g. `ESC-1`.
    pub id: String,
    /// The SPEC section the rule belongs to; the id's family implies it, and the tests check that they agree.
    pub section: u8,
    /// One line a reader of a report understands without opening SPEC.md.
    pub title: String,
    /// The threats (`contracts/threats.toml`) the rule guards against, so a report can say what a failure exposes.
    pub threats: Vec<String>,
    /// Where the id comes from; only SPEC-defined ids must appear in SPEC.md.
    #[serde(default)]
    pub origin: Origin,
}

/// Where a rule id is defined. SPEC states some rules without an id; those ids are coined in `contracts/`, and
/// the comparison of the catalog with SPEC.md must not expect them there.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The id is defined in SPEC.md.
    #[default]
    Spec,
    /// SPEC states the rule without an id; the id is coined in contracts/.
    Contracts,
}

super::contract_file!(Rules, "rules.toml", parse_toml, include_str!("../../contracts/rules.toml"));

impl Rules {
    /// The rule with this id, if the catalog has it (the first one, should an id be duplicated).
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rule.iter().find(|rule| rule.id == id)
    }

    /// Every rule, in catalog order.
    pub fn iter(&self) -> std::slice::Iter<'_, Rule> {
        self.rule.iter()
    }

    /// How many rules the catalog has.
    pub fn len(&self) -> usize {
        self.rule.len()
    }

    /// Whether the catalog is empty (a broken file, since SPEC has rules).
    pub fn is_empty(&self) -> bool {
        self.rule.is_empty()
    }
}

impl<'a> IntoIterator for &'a Rules {
    type Item = &'a Rule;
    type IntoIter = std::slice::Iter<'a, Rule>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
