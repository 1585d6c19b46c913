//! The contract folder (`contracts/`) bound to the reference model and to SPEC.md.
//!
//! Each file is read by the typed loaders of `conform::contracts`, which refuse unknown fields, so a typo is an error
//! naming the file and the field. The tests then prove that the authorization matrix equals
//! `conform_reference::authz::authorize` on every cell, that openapi.yaml binds every abstract operation with the
//! refusal codes and statuses of `Refusal`, that every SPEC rule is traced by some contract entry, and that rules and
//! threats reference each other consistently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use conform::contracts::launch::LaunchCriteria;
use conform::contracts::matrix::{Cell, Matrix, MatrixRow, Transport};
use conform::contracts::openapi::{ApiOperation, OpenApi};
use conform::contracts::realtime::{Delivery, Direction, Realtime, Reception};
use conform::contracts::rules::{Origin, Rule, Rules};
use conform::contracts::threats::Threats;
use conform::contracts::{ContractError, Contracts};
use conform_reference::authz::{Parties, PrincipalClass, authorize};
use conform_reference::ids::{Timestamp, UserId};
use conform_reference::ops::{OperationClass, OperationKind};
use conform_reference::refusal::Refusal;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------------------
// Loading (the loaders are `conform::contracts`; finding SPEC.md and the seeds is the tests' business)

const RULES: &str = Rules::FILE;
const THREATS: &str = Threats::FILE;
const MATRIX: &str = Matrix::FILE;
const OPENAPI: &str = OpenApi::FILE;
const REALTIME: &str = Realtime::FILE;
const LAUNCH: &str = LaunchCriteria::FILE;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn contracts_dir() -> PathBuf {
    repo_root().join("contracts")
}

/// The first of `candidates` (relative to the repository root, or absolute) that exists.
fn shared_file(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| repo_root().join(c)).find(|p| p.exists())
}

fn spec_path() -> Option<PathBuf> {
    shared_file(&["/work/shared/SPEC.md", "../shared/SPEC.md"])
}

fn seeds_dir() -> Option<PathBuf> {
    shared_file(&["/work/shared/seeds", "../shared/seeds"])
}

/// Every contract file as it is on disk now.
fn load_all() -> Contracts {
    Contracts::load(contracts_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// A parse failure's message, which is what a user sees.
fn message<T: std::fmt::Debug>(result: Result<T, ContractError>) -> String {
    result.expect_err("expected a parse error").to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// The escrow states of SPEC §1, used when SPEC.md is not at hand.
const ESCROW_STATES: [&str; 11] = [
    "awaiting_payment",
    "payment_review",
    "funded",
    "delivered",
    "disputed",
    "release_pending",
    "released",
    "refund_pending",
    "refunded",
    "cancelled",
    "expired",
];

/// The refusals a matrix cell may name.
const MATRIX_REFUSALS: [Refusal; 4] =
    [Refusal::Unauthenticated, Refusal::NotFound, Refusal::Forbidden, Refusal::StepUpRequired];

/// The suites a launch criterion may name (optionally narrowed with `/name`): those a run has.
use conform::suites::SUITES;

/// The section a rule id's family belongs to.
fn family_section(id: &str) -> Option<u8> {
    let (family, number) = id.split_once('-')?;
    if number.is_empty() || number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match family {
        "ESC" => 1,
        "LED" => 2,
        "AZ" => 3,
        "RT" => 4,
        "SES" => 5,
        "WH" => 6,
        "PRV" => 7,
        "DRL" => 8,
        "LC" => 10,
        "CAP" => 11,
        _ => return None,
    })
}

/// A SPEC-style rule id token: upper-case family, a dash, a number without leading zero.
fn looks_like_rule_id(token: &str) -> bool {
    let Some((family, number)) = token.split_once('-') else { return false };
    (2..=4).contains(&family.len())
        && family.bytes().all(|b| b.is_ascii_uppercase())
        && !number.is_empty()
        && !number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Rule ids SPEC.md defines: the id-shaped token at the start of a table row or a bullet item.
fn spec_rule_ids(spec: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in spec.lines() {
        let line = line.trim_start();
        let first = if let Some(row) = line.strip_prefix('|') {
            row.split('|').next().unwrap_or("").trim()
        } else if let Some(item) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
            item.split_whitespace().next().unwrap_or("")
        } else {
            continue;
        };
        if looks_like_rule_id(first) {
            ids.insert(first.to_owned());
        }
    }
    ids
}

/// The escrow states listed after "States:" in SPEC §1.
fn spec_states(spec: &str) -> Option<Vec<String>> {
    let start = spec.find("States:")?;
    let rest = &spec[start..];
    let end = rest.find("Terminal:")?;
    let states: Vec<String> = rest[..end].split('`').skip(1).step_by(2).map(str::to_owned).collect();
    (!states.is_empty()).then_some(states)
}

/// How many bullet items section 5 of the seed report lists, if the report is at hand.
fn seed_section_five_items() -> Option<usize> {
    let dir = seeds_dir()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).ok()?;
        let mut in_five = false;
        let mut count = 0;
        for line in text.lines() {
            let trimmed = line.trim_start_matches('#').trim();
            if trimmed.starts_with("5. ") || trimmed.starts_with("5 ") {
                in_five = true;
                continue;
            }
            if in_five && (trimmed.starts_with("6. ") || trimmed.starts_with("6 ")) {
                break;
            }
            if in_five && line.trim_start().starts_with("- ") {
                count += 1;
            }
        }
        if in_five {
            return Some(count);
        }
    }
    None
}

fn known_rules(c: &Contracts) -> BTreeMap<&str, &Rule> {
    c.rules.rule.iter().map(|r| (r.id.as_str(), r)).collect()
}

fn known_threats(c: &Contracts) -> BTreeSet<&str> {
    c.threats.threat.iter().map(|t| t.id.as_str()).collect()
}

fn matrix_row<'a>(c: &'a Contracts, name: &str) -> Option<&'a MatrixRow> {
    c.matrix.operation.iter().find(|row| row.name == name)
}

fn class_by_name(name: &str) -> Option<PrincipalClass> {
    PrincipalClass::ALL.into_iter().find(|class| class.name() == name)
}

/// One entry of any contract file that names rules and threats, for the cross-reference checks.
struct Tagged<'a> {
    place: String,
    rules: &'a [String],
    threats: &'a [String],
}

fn tagged_entries(c: &Contracts) -> Vec<Tagged<'_>> {
    let mut out = Vec::new();
    let mut push = |place: String, rules, threats| out.push(Tagged { place, rules, threats });
    for row in &c.matrix.operation {
        push(format!("{MATRIX}: [[operation]] {}", row.name), &row.rules, &row.threats);
    }
    for case in &c.matrix.two_person {
        push(format!("{MATRIX}: [[two_person]] {}", case.id), &case.rules, &case.threats);
    }
    for case in &c.matrix.mass_assignment {
        push(format!("{MATRIX}: [[mass_assignment]] {} {}", case.operation, case.field), &case.rules, &case.threats);
    }
    for (path, item) in &c.openapi.paths {
        for (method, op) in item.operations() {
            push(format!("{OPENAPI}: {method} {path} ({})", op.operation_id), &op.rules, &op.threats);
        }
    }
    for op in &c.openapi.x_socketio.operations {
        push(format!("{OPENAPI}: x-socketio {}", op.operation), &op.rules, &op.threats);
    }
    let rt = &c.realtime;
    push(format!("{REALTIME}: [handshake]"), &rt.handshake.rules, &rt.handshake.threats);
    for room in &rt.room {
        push(format!("{REALTIME}: [[room]] {}", room.name), &room.rules, &room.threats);
    }
    for event in &rt.event {
        push(format!("{REALTIME}: [[event]] {}", event.name), &event.rules, &event.threats);
    }
    for delivery in &rt.delivery {
        push(format!("{REALTIME}: [[delivery]] {}", delivery.principal), &delivery.rules, &delivery.threats);
    }
    for limit in &rt.limit {
        push(format!("{REALTIME}: [[limit]] {}", limit.id), &limit.rules, &limit.threats);
    }
    out
}

/// Follows a local `$ref` ("#/components/<kind>/<name>") in the OpenAPI document.
fn resolve<'a>(api: &'a OpenApi, value: &'a Value) -> Result<&'a Value, String> {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else { return Ok(value) };
    let mut parts = reference.strip_prefix("#/components/").map(|r| r.splitn(2, '/')).ok_or(reference)?;
    let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let table = match kind {
        "responses" => &api.components.responses,
        "schemas" => &api.components.schemas,
        "parameters" => &api.components.parameters,
        "securitySchemes" => &api.components.security_schemes,
        _ => return Err(format!("unsupported $ref {reference}")),
    };
    table.get(name).ok_or_else(|| format!("dangling $ref {reference}"))
}

/// The error codes an error-response schema allows: `properties.error.enum` or `.const`, through `$ref`, `allOf`,
/// `oneOf` and `anyOf`.
fn error_codes(api: &OpenApi, schema: &Value, out: &mut BTreeSet<String>) -> Result<(), String> {
    let schema = resolve(api, schema)?;
    if let Some(error) = schema.get("properties").and_then(|p| p.get("error")) {
        if let Some(values) = error.get("enum").and_then(Value::as_array) {
            out.extend(values.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if let Some(value) = error.get("const").and_then(Value::as_str) {
            out.insert(value.to_owned());
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            error_codes(api, sub, out)?;
        }
    }
    Ok(())
}

/// The error codes each status of an operation declares, e.g. 401 → {unauthenticated, step_up_required}.
fn declared_errors(api: &OpenApi, op: &ApiOperation) -> Result<BTreeMap<u16, BTreeSet<String>>, String> {
    let mut out = BTreeMap::new();
    for (status, response) in &op.responses {
        let code: u16 = status.parse().map_err(|_| format!("response key {status:?} is not an HTTP status"))?;
        if code < 400 {
            continue;
        }
        let response = resolve(api, response)?;
        let schema = response
            .pointer("/content/application~1json/schema")
            .ok_or_else(|| format!("response {status} has no application/json schema"))?;
        let mut codes = BTreeSet::new();
        error_codes(api, schema, &mut codes)?;
        if codes.is_empty() {
            return Err(format!("response {status} names no error code (properties.error.enum)"));
        }
        out.insert(code, codes);
    }
    Ok(out)
}

fn fail_if_any(title: &str, problems: &[String]) {
    if !problems.is_empty() {
        let mut message = format!("{title}: {} problem(s)\n", problems.len());
        for p in problems {
            let _ = writeln!(message, "  - {p}");
        }
        panic!("{message}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[test]
fn every_contract_file_parses() {
    let c = load_all();
    assert!(!c.rules.rule.is_empty(), "{RULES}: no [[rule]]");
    assert_eq!(c.threats.threat.len(), 15, "{THREATS}: expected T01..T15");
    assert!(!c.matrix.operation.is_empty(), "{MATRIX}: no [[operation]]");
    assert!(c.openapi.openapi.starts_with("3.1"), "{OPENAPI}: openapi must be 3.1.x, is {}", c.openapi.openapi);
    assert!(c.openapi.info.get("title").is_some(), "{OPENAPI}: info.title missing");
    assert!(!c.openapi.servers.is_empty() && !c.openapi.tags.is_empty());
    assert_eq!(c.openapi.security, vec![serde_json::json!({ "bearerAuth": [] })], "{OPENAPI}: global security");
    assert!(!c.realtime.event.is_empty(), "{REALTIME}: no [[event]]");
    assert!(!c.launch.criterion.is_empty(), "{LAUNCH}: no [[criterion]]");
}

#[test]
fn embedded_contracts_are_the_files_on_disk() {
    let embedded = [
        (RULES, Rules::EMBEDDED),
        (THREATS, Threats::EMBEDDED),
        (MATRIX, Matrix::EMBEDDED),
        (OPENAPI, OpenApi::EMBEDDED),
        (REALTIME, Realtime::EMBEDDED),
        (LAUNCH, LaunchCriteria::EMBEDDED),
    ];
    for (file, text) in embedded {
        let path = contracts_dir().join(file);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(on_disk == text, "contracts/{file}: the copy embedded in the library differs from the file on disk");
    }
    let c = Contracts::embedded().unwrap_or_else(|e| panic!("{e}"));
    let disk = load_all();
    let ids = |rules: &Rules| rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&c.rules), ids(&disk.rules), "embedded and on-disk rule catalogs");
    assert_eq!(c.matrix.operation.len(), disk.matrix.operation.len(), "embedded and on-disk matrix rows");
}

#[test]
fn lookups_find_what_the_harness_asks_for() {
    let c = load_all();
    assert_eq!(c.rules.len(), c.rules.rule.len());
    for rule in &c.rules {
        assert_eq!(c.rules.get(&rule.id).map(|r| r.title.as_str()), Some(rule.title.as_str()), "{RULES}: {}", rule.id);
    }
    assert!(c.rules.get("ESC-0").is_none() && c.threats.get("T00").is_none() && c.launch.get("LC-NONE").is_none());
    for threat in &c.threats {
        assert_eq!(c.threats.get(&threat.id).map(|t| t.id.as_str()), Some(threat.id.as_str()));
    }
    assert!(c.launch.get("LC-LEDGER").is_some() && c.launch.blocking().count() > 0);
    assert_eq!(c.realtime.event("escrow:subscribe").and_then(|e| e.operation.as_deref()), Some("subscribe_escrow"));
    assert_eq!(c.realtime.limit("rate").and_then(|l| l.events_per_second), Some(20));
    assert_eq!(c.realtime.delivery("buyer").map(|d| d.escrow_updated), Some(Reception::Always));

    // The typed matrix lookup the matrix suite uses gives, for every cell, what the reference model decides.
    let parties = Parties { buyer: UserId(1), seller: UserId(2) };
    let now = Timestamp(1_700_000_000);
    for &op in OperationKind::ALL {
        assert_eq!(c.matrix.row(op).map(|row| row.operation()), Some(Ok(op)), "{MATRIX}: row of {op}");
        for class in PrincipalClass::ALL {
            let model =
                authorize(&class.principal(parties, UserId(3), now), op, op.targets_escrow().then_some(parties), now);
            let expected = c.matrix.expected(op, class);
            assert_eq!(expected, Some(Cell::from(model)), "{MATRIX}: {op} called by {}", class.name());
            assert_eq!(expected.map(Cell::as_result), Some(model));
        }
        let routes: Vec<_> = c.openapi.routes_for(op).collect();
        assert_eq!(routes.is_empty(), op == OperationKind::SubscribeEscrow, "{OPENAPI}: routes of {op}");
        assert!(routes.iter().all(|(_, _, route)| route.operation() == Ok(op) && !route.test_only));
    }

    assert_eq!(Cell::from_code("allow"), Some(Cell::Allow));
    for refusal in Refusal::ALL {
        assert_eq!(Cell::from_code(refusal.code()), Some(Cell::Refuse(refusal)));
        assert_eq!(Cell::Refuse(refusal).to_string(), refusal.code());
    }
    assert_eq!(Cell::from_code("alow"), None);
}

#[test]
fn loader_errors_name_the_file_and_the_field() {
    let row = |extra: &str| {
        format!(
            "two_person = []\nmass_assignment = []\n[[operation]]\nname = \"get_escrow\"\ntransport = \"rest\"\n\
             escrow = true\nanonymous = \"unauthenticated\"\nstranger = \"not_found\"\nbuyer = \"allow\"\n\
             seller = \"allow\"\nsupport = \"allow\"\nadmin = \"allow\"\n{extra}rules = []\nthreats = []\n"
        )
    };
    // The well-formed row parses, so the failures below are due to the one field.
    Matrix::parse(MATRIX, &row("admin_stepped_up = \"allow\"\n")).expect("well-formed row");

    let missing = message(Matrix::parse(MATRIX, &row("")));
    assert!(missing.contains(MATRIX) && missing.contains("admin_stepped_up"), "{missing}");

    let unknown = message(Matrix::parse(MATRIX, &row("admin_stepped_up = \"allow\"\nstaff = \"allow\"\n")));
    assert!(unknown.contains(MATRIX) && unknown.contains("staff"), "{unknown}");

    // A cell is typed: a word that is neither allow nor a refusal code is refused with its line and value.
    let cell = message(Matrix::parse(MATRIX, &row("admin_stepped_up = \"alow\"\n")));
    assert!(cell.contains(MATRIX) && cell.contains("line 13") && cell.contains("alow"), "{cell}");

    let no_title = message(Rules::parse(RULES, "[[rule]]\nid = \"ESC-1\"\nsection = 1\nthreats = []\n"));
    assert!(no_title.contains(RULES) && no_title.contains("title"), "{no_title}");

    let bad_origin = message(Rules::parse(
        RULES,
        "[[rule]]\nid = \"X-1\"\nsection = 1\ntitle = \"t\"\nthreats = []\norigin = \"blog\"\n",
    ));
    assert!(bad_origin.contains(RULES) && bad_origin.contains("blog"), "{bad_origin}");

    let evidence = message(LaunchCriteria::parse(
        LAUNCH,
        "owners = []\n[gate]\nunverified_blocking = \"fail\"\nwaiver_fields = []\nrules = []\n[[criterion]]\n\
         id = \"LC-X\"\ntitle = \"t\"\nowner = \"o\"\nblocking = true\nevidence = { rules = [], tags = [], suite = [] }\n",
    ));
    assert!(evidence.contains(LAUNCH) && evidence.contains("suite"), "{evidence}");

    let yaml_op = |field: &str| {
        format!(
            "paths:\n  /v1/x:\n    get:\n      {field}: get_escrow\n      tags: []\n      summary: s\n      \
             x-rules: []\n      x-threats: []\n      responses: {{}}\n"
        )
    };
    let op_id = message(OpenApi::parse(OPENAPI, &yaml_op("operationID")));
    assert!(op_id.contains(OPENAPI) && op_id.contains("operationID"), "{op_id}");
    let missing_op_id = message(OpenApi::parse(OPENAPI, &yaml_op("summary2")));
    assert!(missing_op_id.contains(OPENAPI) && missing_op_id.contains("summary2"), "{missing_op_id}");
    assert!(missing_op_id.contains("line 4"), "the YAML error names the line: {missing_op_id}");

    let realtime = message(Realtime::parse(REALTIME, "namespace = 1\n"));
    assert!(realtime.contains(REALTIME) && realtime.contains("namespace"), "{realtime}");
    assert!(realtime.contains("line 1"), "the TOML error names the line: {realtime}");

    // A file that cannot be read is named, with the path that was tried.
    let absent = contracts_dir().join("no-such-dir").join(RULES);
    let unreadable = message(Rules::load(&absent));
    assert!(
        unreadable.starts_with(&format!("contracts/{RULES}: cannot read")) && unreadable.contains("no-such-dir"),
        "{unreadable}"
    );
}

#[test]
fn rules_catalog_is_well_formed() {
    let c = load_all();
    let threats = known_threats(&c);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for rule in &c.rules.rule {
        let at = format!("{RULES}: rule {}", rule.id);
        if !seen.insert(rule.id.as_str()) {
            problems.push(format!("{at}: duplicate id"));
        }
        match family_section(&rule.id) {
            None => problems.push(format!("{at}: field id is not a known rule-id form (ESC-1, LED-2, …)")),
            Some(section) if section != rule.section => problems
                .push(format!("{at}: field section is {}, the id's family is in section {section}", rule.section)),
            Some(_) => {}
        }
        if rule.title.trim().is_empty() || rule.title.contains('\n') || rule.title.len() > 160 {
            problems.push(format!("{at}: field title must be one non-empty line of at most 160 characters"));
        }
        for t in &rule.threats {
            if !threats.contains(t.as_str()) {
                problems.push(format!("{at}: field threats names unknown threat {t}"));
            }
        }
        let coined = matches!(rule.id.split_once('-'), Some(("LC" | "CAP", _)));
        if coined != (rule.origin == Origin::Contracts) {
            problems.push(format!("{at}: field origin must be \"contracts\" exactly for ids SPEC does not define"));
        }
    }
    fail_if_any("rules.toml", &problems);
}

#[test]
fn rules_catalog_lists_exactly_the_spec_rule_ids() {
    let c = load_all();
    let Some(path) = spec_path() else {
        println!("note: SPEC.md not found at /work/shared/SPEC.md or ../shared/SPEC.md; skipping the id comparison");
        return;
    };
    let spec = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let from_spec = spec_rule_ids(&spec);
    assert!(
        from_spec.len() > 50,
        "{}: found only {} rule ids; did the format change?",
        path.display(),
        from_spec.len()
    );
    let catalog: BTreeSet<String> =
        c.rules.rule.iter().filter(|r| r.origin == Origin::Spec).map(|r| r.id.clone()).collect();
    let missing: Vec<_> = from_spec.difference(&catalog).collect();
    let extra: Vec<_> = catalog.difference(&from_spec).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{RULES} vs {}: ids in SPEC but not in the catalog: {missing:?}; ids in the catalog (origin spec) but not in SPEC: {extra:?}",
        path.display()
    );
}

#[test]
fn threats_and_rules_reference_each_other() {
    let c = load_all();
    let rules = known_rules(&c);
    let mut problems = Vec::new();
    let expected: BTreeSet<String> = (1..=15).map(|n| format!("T{n:02}")).collect();
    let actual: BTreeSet<String> = c.threats.threat.iter().map(|t| t.id.clone()).collect();
    if expected != actual {
        problems.push(format!("{THREATS}: ids must be exactly T01..T15, are {actual:?}"));
    }
    let mut seen = BTreeSet::new();
    for threat in &c.threats.threat {
        let at = format!("{THREATS}: threat {}", threat.id);
        if !seen.insert(&threat.id) {
            problems.push(format!("{at}: duplicate id"));
        }
        if threat.title.trim().is_empty() || threat.description.trim().is_empty() {
            problems.push(format!("{at}: fields title and description must not be empty"));
        }
        if threat.rules.is_empty() {
            problems.push(format!("{at}: field rules is empty; every threat needs at least one rule"));
        }
        for r in &threat.rules {
            match rules.get(r.as_str()) {
                None => problems.push(format!("{at}: field rules names unknown rule {r}")),
                Some(rule) if !rule.threats.contains(&threat.id) => problems.push(format!(
                    "{at}: field rules lists {r}, but {RULES} rule {r} does not list {} in its threats",
                    threat.id
                )),
                Some(_) => {}
            }
        }
    }
    for rule in &c.rules.rule {
        for t in &rule.threats {
            if let Some(threat) = c.threats.threat.iter().find(|x| &x.id == t)
                && !threat.rules.contains(&rule.id)
            {
                problems.push(format!(
                    "{RULES}: rule {} lists threat {t}, but {THREATS} threat {t} does not list it in its rules",
                    rule.id
                ));
            }
        }
    }
    fail_if_any("threats.toml and rules.toml", &problems);
}

#[test]
fn every_rule_and_threat_named_in_a_contract_exists_and_fits() {
    let c = load_all();
    let rules = known_rules(&c);
    let threats = known_threats(&c);
    let mut problems = Vec::new();
    for entry in tagged_entries(&c) {
        for r in entry.rules {
            if !rules.contains_key(r.as_str()) {
                problems.push(format!("{}: rules names unknown rule {r}", entry.place));
            }
        }
        for t in entry.threats {
            if !threats.contains(t.as_str()) {
                problems.push(format!("{}: threats names unknown threat {t}", entry.place));
            } else if !entry.rules.iter().any(|r| rules.get(r.as_str()).is_some_and(|rule| rule.threats.contains(t))) {
                problems.push(format!(
                    "{}: threat {t} is guarded by none of the entry's rules {:?}",
                    entry.place, entry.rules
                ));
            }
        }
    }
    for criterion in &c.launch.criterion {
        for r in criterion.evidence.rules.iter().chain(&c.launch.gate.rules) {
            if !rules.contains_key(r.as_str()) {
                problems.push(format!("{LAUNCH}: criterion {}: evidence.rules names unknown rule {r}", criterion.id));
            }
        }
    }
    fail_if_any("rule and threat references", &problems);
}

#[test]
fn every_spec_rule_is_traced_by_a_contract_entry() {
    let c = load_all();
    let mut traced: BTreeMap<&str, BTreeSet<&'static str>> = BTreeMap::new();
    for entry in tagged_entries(&c) {
        let file = if entry.place.starts_with(MATRIX) {
            MATRIX
        } else if entry.place.starts_with(OPENAPI) {
            OPENAPI
        } else {
            REALTIME
        };
        for r in entry.rules {
            traced.entry(r.as_str()).or_default().insert(file);
        }
    }
    for criterion in &c.launch.criterion {
        for r in &criterion.evidence.rules {
            traced.entry(r.as_str()).or_default().insert(LAUNCH);
        }
    }
    for r in &c.launch.gate.rules {
        traced.entry(r.as_str()).or_default().insert(LAUNCH);
    }
    for threat in &c.threats.threat {
        for r in &threat.rules {
            traced.entry(r.as_str()).or_default().insert(THREATS);
        }
    }
    let untraced: Vec<&str> =
        c.rules.rule.iter().map(|r| r.id.as_str()).filter(|id| !traced.contains_key(id)).collect();
    assert!(
        untraced.is_empty(),
        "rules traced by no contract entry (matrix, openapi, realtime, launch criteria, threats): {untraced:?}"
    );
    // Every SPEC rule is also carried by something a suite executes or a gate decides, not only by the threat list.
    let only_threats: Vec<&str> = c
        .rules
        .rule
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| traced.get(id).is_some_and(|files| files.iter().all(|f| *f == THREATS)))
        .collect();
    assert!(only_threats.is_empty(), "rules traced only by threats.toml: {only_threats:?}");
}

#[test]
fn matrix_has_exactly_one_row_per_operation() {
    let c = load_all();
    let mut problems = Vec::new();
    let mut rows: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &c.matrix.operation {
        *rows.entry(row.name.as_str()).or_default() += 1;
        if let Err(e) = OperationKind::parse(&row.name) {
            problems.push(format!("{MATRIX}: [[operation]] name: {e}"));
        }
    }
    for op in OperationKind::ALL {
        match rows.get(op.name()) {
            None => problems.push(format!("{MATRIX}: no [[operation]] row for {op}")),
            Some(n) if *n > 1 => problems.push(format!("{MATRIX}: {n} rows for {op}")),
            Some(_) => {}
        }
    }
    let order: Vec<&str> = c.matrix.operation.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<&str> = OperationKind::ALL.iter().map(|op| op.name()).collect();
    if problems.is_empty() && order != expected {
        problems.push(format!("{MATRIX}: rows should follow the order of OperationKind::ALL"));
    }
    fail_if_any("matrix rows", &problems);
}

#[test]
fn matrix_rows_are_well_formed() {
    let c = load_all();
    let states: BTreeSet<&str> = ESCROW_STATES.into_iter().collect();
    let mut problems = Vec::new();
    for row in &c.matrix.operation {
        let at = format!("{MATRIX}: [[operation]] {}", row.name);
        let Ok(op) = OperationKind::parse(&row.name) else { continue };
        if row.escrow != op.targets_escrow() {
            problems.push(format!(
                "{at}: field escrow is {}, ops.rs says targets_escrow = {}",
                row.escrow,
                op.targets_escrow()
            ));
        }
        let socket = op == OperationKind::SubscribeEscrow;
        if (row.transport == Transport::Socketio) != socket {
            problems.push(format!("{at}: field transport must be socketio exactly for subscribe_escrow"));
        }
        match (&row.state, op.targets_escrow()) {
            (Some(s), true) if !states.contains(s.as_str()) => {
                problems.push(format!("{at}: field state {s:?} is not an escrow state"))
            }
            (None, true) => {
                problems.push(format!("{at}: field state missing (the state the rightful caller succeeds in)"))
            }
            (Some(_), false) => problems.push(format!("{at}: field state set on an operation that names no escrow")),
            _ => {}
        }
        for class in PrincipalClass::ALL {
            let cell = row.cell(class);
            let expected = match cell {
                Cell::Allow => true,
                Cell::Refuse(refusal) => MATRIX_REFUSALS.contains(&refusal),
            };
            if !expected {
                problems.push(format!(
                    "{at}: field {} is {:?}; expected allow, unauthenticated, not_found, forbidden or step_up_required",
                    class.name(),
                    cell.code()
                ));
            }
        }
        let is_list = op.class() == OperationClass::Read && !op.targets_escrow() && row.name.starts_with("list_");
        if is_list != row.filtered {
            problems.push(format!("{at}: field filtered must be true exactly for the user-facing list operations"));
        }
        if row.filtered && !row.note.as_deref().is_some_and(|n| n.contains("filtered")) {
            problems.push(format!("{at}: field note must say that allow means filtered"));
        }
        if op == OperationKind::ListEscrows && !row.rules.iter().any(|r| r == "AZ-4") {
            problems.push(format!("{at}: field rules must include AZ-4"));
        }
        if row.rules.is_empty() || row.threats.is_empty() {
            problems.push(format!("{at}: fields rules and threats must not be empty"));
        }
    }
    fail_if_any("matrix rows", &problems);
}

#[test]
fn matrix_agrees_with_authorize_on_every_cell() {
    let c = load_all();
    let parties = Parties { buyer: UserId(1), seller: UserId(2) };
    let other = UserId(3);
    let now = Timestamp(1_700_000_000);
    let mut disagreements = Vec::new();
    let mut cells = 0;
    for row in &c.matrix.operation {
        let op = OperationKind::parse(&row.name).unwrap_or_else(|e| panic!("{MATRIX}: {e}"));
        let escrow = op.targets_escrow().then_some(parties);
        for class in PrincipalClass::ALL {
            let principal = class.principal(parties, other, now);
            let model = Cell::from(authorize(&principal, op, escrow, now));
            cells += 1;
            if row.cell(class) != model {
                disagreements.push(format!(
                    "{MATRIX}: operation {}, column {}: the matrix says {}, authorize says {model}",
                    row.name,
                    class.name(),
                    row.cell(class)
                ));
            }
        }
    }
    assert_eq!(cells, OperationKind::ALL.len() * PrincipalClass::ALL.len(), "every cell compared");
    fail_if_any("matrix vs conform_reference::authz::authorize", &disagreements);
}

#[test]
fn two_person_cases_are_consistent() {
    let c = load_all();
    let states: BTreeSet<&str> = ESCROW_STATES.into_iter().collect();
    let mut problems = Vec::new();
    let mut covered = BTreeSet::new();
    for case in &c.matrix.two_person {
        let at = format!("{MATRIX}: [[two_person]] {}", case.id);
        match OperationKind::parse(&case.operation) {
            Ok(op) if op.class() == OperationClass::AdminStepUp => {
                covered.insert(op);
            }
            Ok(op) => problems.push(format!("{at}: field operation {op} is not an admin step-up operation")),
            Err(e) => problems.push(format!("{at}: field operation: {e}")),
        }
        if OperationKind::parse(&case.approve_operation) != Ok(OperationKind::ApprovePending) {
            problems.push(format!("{at}: field approve_operation must be approve_pending"));
        }
        if let Some(s) = &case.state
            && !states.contains(s.as_str())
        {
            problems.push(format!("{at}: field state {s:?} is not an escrow state"));
        }
        if case.condition.trim().is_empty() {
            problems.push(format!("{at}: field condition is empty"));
        }
        if (case.first_call_status, case.first_call_outcome.as_str()) != (202, "pending_approval") {
            problems.push(format!("{at}: the first admin's call must answer 202 pending_approval (AZ-7)"));
        }
        if (case.second_admin_status, case.second_admin_outcome.as_str()) != (200, "executed") {
            problems.push(format!("{at}: the second admin's approval must answer 200 executed (AZ-7)"));
        }
        let same = Refusal::from_code(&case.same_admin_error);
        if same != Some(Refusal::SameApprover) || case.same_admin_status != Refusal::SameApprover.http_status() {
            problems.push(format!("{at}: the same admin approving must get 403 same_approver (AZ-7)"));
        }
        match Refusal::from_code(&case.void_error) {
            Some(r) if r.http_status() == case.void_status => {}
            _ => problems.push(format!("{at}: fields void_error/void_status are not a Refusal code and its status")),
        }
        if !case.rules.iter().any(|r| r == "AZ-7") {
            problems.push(format!("{at}: field rules must include AZ-7"));
        }
        // The operation's matrix row must allow a stepped-up admin, so 202 is due to AZ-7 alone.
        if let Some(row) = matrix_row(&c, &case.operation)
            && row.admin_stepped_up != Cell::Allow
        {
            problems.push(format!("{at}: the matrix does not allow admin_stepped_up on {}", case.operation));
        }
    }
    for op in [OperationKind::ResolveDispute, OperationKind::ApproveProof, OperationKind::ChangeRole] {
        if !covered.contains(&op) {
            problems.push(format!("{MATRIX}: no [[two_person]] case for {op} (AZ-7)"));
        }
    }
    fail_if_any("two-person cases", &problems);
}

#[test]
fn mass_assignment_cases_are_consistent() {
    let c = load_all();
    let mut problems = Vec::new();
    let mut fields = BTreeSet::new();
    let body_properties = |operation: &str| -> BTreeSet<String> {
        c.openapi
            .routes()
            .filter(|(_, _, op)| op.operation_name() == operation)
            .filter_map(|(_, _, op)| op.request_body.as_ref())
            .filter_map(|body| body.pointer("/content/application~1json/schema"))
            .filter_map(|schema| resolve(&c.openapi, schema).ok())
            .filter_map(|schema| schema.get("properties").and_then(Value::as_object))
            .flat_map(|props| props.keys().cloned())
            .collect()
    };
    for case in &c.matrix.mass_assignment {
        let at = format!("{MATRIX}: [[mass_assignment]] {} {}", case.operation, case.field);
        let op = match OperationKind::parse(&case.operation) {
            Ok(op) => op,
            Err(e) => {
                problems.push(format!("{at}: field operation: {e}"));
                continue;
            }
        };
        if !op.changes_state() {
            problems.push(format!("{at}: field operation {op} changes nothing"));
        }
        match class_by_name(&case.principal) {
            None => problems.push(format!("{at}: field principal {:?} is not a principal class", case.principal)),
            Some(class) => {
                if matrix_row(&c, &case.operation).is_none_or(|row| row.cell(class) != Cell::Allow) {
                    problems.push(format!(
                        "{at}: the matrix does not allow {} on {op}, so a refusal would not prove AZ-8",
                        case.principal
                    ));
                }
            }
        }
        if Refusal::from_code(&case.reject_with) != Some(Refusal::ValidationFailed) {
            problems.push(format!("{at}: field reject_with must be validation_failed (422, AZ-8)"));
        }
        if !case.may_ignore {
            problems.push(format!("{at}: field may_ignore must be true (AZ-8: rejected or ignored)"));
        }
        if case.value.as_str().is_some_and(str::is_empty) {
            problems.push(format!("{at}: field value is empty"));
        }
        if !case.rules.iter().any(|r| r == "AZ-8") {
            problems.push(format!("{at}: field rules must include AZ-8"));
        }
        if body_properties(&case.operation).contains(&case.field) {
            problems.push(format!("{at}: {OPENAPI} lets the caller set {} in this request body", case.field));
        }
        if matches!(op, OperationKind::CreateEscrow | OperationKind::UpdateEscrow) {
            fields.insert(case.field.as_str());
        }
    }
    for field in ["status", "buyer_id", "seller_id", "amount", "amount_received", "role", "id"] {
        if !fields.contains(field) {
            problems.push(format!("{MATRIX}: no [[mass_assignment]] case sets {field} in create or update (AZ-8)"));
        }
    }
    fail_if_any("mass-assignment cases", &problems);
}

#[test]
fn openapi_binds_every_rest_operation() {
    let c = load_all();
    let api = &c.openapi;
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut bound: BTreeMap<OperationKind, Vec<String>> = BTreeMap::new();
    for (method, path, op) in api.routes() {
        let at = format!("{OPENAPI}: {method} {path}");
        if !ids.insert(op.operation_id.as_str()) {
            problems.push(format!("{at}: operationId {} is not unique", op.operation_id));
        }
        if op.test_only {
            if !path.starts_with("/v1/test/") || OperationKind::parse(&op.operation_id).is_ok() {
                problems.push(format!("{at}: x-test-only routes live under /v1/test/ and bind no abstract operation"));
            }
            continue;
        }
        if let Some(x) = &op.x_operation
            && !op.operation_id.starts_with(&format!("{x}_"))
        {
            problems.push(format!("{at}: operationId {} must start with its x-operation {x}_", op.operation_id));
        }
        match OperationKind::parse(op.operation_name()) {
            Ok(kind) => bound.entry(kind).or_default().push(at.clone()),
            Err(e) => problems.push(format!("{at}: operationId/x-operation: {e}")),
        }
        if op.summary.trim().is_empty() || op.tags.is_empty() {
            problems.push(format!("{at}: fields summary and tags must not be empty"));
        }
        if op.rules.is_empty() || op.threats.is_empty() {
            problems.push(format!("{at}: fields x-rules and x-threats must not be empty"));
        }
        if op.description.as_deref().is_some_and(|d| d.trim().is_empty()) {
            problems.push(format!("{at}: field description is empty"));
        }
    }
    for &op in OperationKind::ALL {
        let routes = bound.get(&op).map_or(0, Vec::len);
        if op == OperationKind::SubscribeEscrow {
            if routes > 0 {
                problems.push(format!("{OPENAPI}: subscribe_escrow is Socket.IO and has no REST route"));
            }
        } else if routes == 0 {
            problems.push(format!("{OPENAPI}: no route has operationId (or x-operation) {op}"));
        }
    }
    let socket: Vec<&str> = api.x_socketio.operations.iter().map(|o| o.operation.as_str()).collect();
    if socket != ["subscribe_escrow"] {
        problems.push(format!("{OPENAPI}: x-socketio.operations must be exactly [subscribe_escrow], is {socket:?}"));
    }
    if api.x_socketio.operations.iter().any(|o| o.event != "escrow:subscribe") {
        problems.push(format!("{OPENAPI}: x-socketio binds subscribe_escrow to the event escrow:subscribe"));
    }
    if api.x_socketio.contract != "contracts/realtime.toml" || api.x_socketio.path != c.realtime.path {
        problems.push(format!("{OPENAPI}: x-socketio must point at contracts/realtime.toml and its path"));
    }
    fail_if_any("openapi operations", &problems);
}

#[test]
fn openapi_error_responses_use_refusal_codes_and_statuses() {
    let c = load_all();
    let api = &c.openapi;
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (method, path, op) in api.routes() {
        let at = format!("{OPENAPI}: {method} {path} ({})", op.operation_id);
        let declared = match declared_errors(api, op) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        for (status, codes) in declared {
            for code in codes {
                match Refusal::from_code(&code) {
                    None => problems.push(format!("{at}: response {status} uses {code:?}, which is no Refusal code")),
                    Some(r) if r.http_status() != status => problems.push(format!(
                        "{at}: response {status} uses {code}, whose status in refusal.rs is {}",
                        r.http_status()
                    )),
                    Some(r) => {
                        used.insert(r);
                    }
                }
            }
        }
        for status in op.responses.keys() {
            if !status.starts_with('2') && !status.starts_with('4') && !status.starts_with('5') {
                problems.push(format!("{at}: unexpected response key {status}"));
            }
        }
        if !op.responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{at}: no success response"));
        }
    }
    for r in Refusal::ALL {
        if !used.contains(&r) {
            problems.push(format!("{OPENAPI}: no operation declares the refusal {r}"));
        }
    }
    let error = api.components.schemas.get("Error").cloned().unwrap_or_default();
    let required: BTreeSet<&str> =
        error.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if required != BTreeSet::from(["error", "message"]) {
        problems.push(format!("{OPENAPI}: components.schemas.Error must require exactly error and message"));
    }
    fail_if_any("openapi error responses", &problems);
}

#[test]
fn openapi_declares_every_refusal_of_the_matrix() {
    let c = load_all();
    let api = &c.openapi;
    let mut problems = Vec::new();
    for row in &c.matrix.operation {
        if row.transport != Transport::Rest {
            continue;
        }
        let mut declared: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        for (_, _, op) in api.routes().filter(|(_, _, op)| op.operation_name() == row.name) {
            for (status, codes) in declared_errors(api, op).unwrap_or_default() {
                declared.entry(status).or_default().extend(codes);
            }
        }
        for class in PrincipalClass::ALL {
            let cell = row.cell(class);
            let Some(refusal) = cell.refusal() else { continue };
            if !declared.get(&refusal.http_status()).is_some_and(|codes| codes.contains(refusal.code())) {
                problems.push(format!(
                    "{OPENAPI}: {} does not declare {} {cell}, which the matrix expects for {}",
                    row.name,
                    refusal.http_status(),
                    class.name()
                ));
            }
        }
    }
    fail_if_any("openapi vs matrix", &problems);
}

#[test]
fn openapi_security_versions_and_two_person_responses_fit_the_operations() {
    let c = load_all();
    let api = &c.openapi;
    let mut problems = Vec::new();
    let two_person: BTreeSet<&str> = c.matrix.two_person.iter().map(|case| case.operation.as_str()).collect();
    let has_param = |op: &ApiOperation, reference: &str| {
        op.parameters.iter().flatten().any(|p| p.get("$ref").and_then(Value::as_str) == Some(reference))
    };
    for (method, path, op) in api.routes() {
        let at = format!("{OPENAPI}: {method} {path} ({})", op.operation_id);
        if op.test_only {
            continue;
        }
        let Ok(kind) = OperationKind::parse(op.operation_name()) else { continue };
        let public = kind.class() == OperationClass::Public;
        let open = op.security.as_ref().is_some_and(Vec::is_empty);
        if public != open {
            problems.push(format!(
                "{at}: security must be [] exactly for public operations (class {:?}); others inherit bearerAuth",
                kind.class()
            ));
        }
        if let Some(security) = &op.security
            && !security.is_empty()
        {
            problems.push(format!("{at}: security overrides the global bearerAuth"));
        }
        let escrow_action =
            kind.targets_escrow() && matches!(kind.class(), OperationClass::Write | OperationClass::AdminStepUp);
        if escrow_action {
            if !has_param(op, "#/components/parameters/IfMatch") {
                problems.push(format!("{at}: an escrow action must accept If-Match (ESC-21)"));
            }
            for (status, code) in [(412, "version_mismatch"), (409, "invalid_transition")] {
                let declared = declared_errors(api, op).unwrap_or_default();
                if !declared.get(&status).is_some_and(|codes| codes.contains(code)) {
                    problems.push(format!("{at}: an escrow action must declare {status} {code}"));
                }
            }
        }
        if kind.targets_escrow() && !path.contains("{escrow_id}") {
            problems.push(format!("{at}: an escrow operation's path names {{escrow_id}}"));
        }
        if two_person.contains(kind.name()) != op.responses.contains_key("202") && kind != OperationKind::DeliverWebhook
        {
            problems.push(format!("{at}: 202 (pending approval) exactly for the two-person operations"));
        }
        if kind == OperationKind::DeliverWebhook {
            if !op.raw_body {
                problems.push(format!("{at}: webhooks are verified on the raw body (x-raw-body: true, WH-1)"));
            }
            if path.ends_with("/shkeeper") && !op.responses.contains_key("202") {
                problems.push(format!("{at}: SHKeeper counts only 202 as delivered (WH-3)"));
            }
        }
    }
    fail_if_any("openapi security, versions and two-person responses", &problems);
}

#[test]
fn openapi_escrow_states_match_spec() {
    let c = load_all();
    let from_spec = match spec_path().map(std::fs::read_to_string) {
        Some(Ok(spec)) => spec_states(&spec).expect("SPEC.md: no `States: … Terminal:` line in section 1"),
        _ => {
            println!("note: SPEC.md not found; comparing with the built-in state list");
            ESCROW_STATES.iter().map(|s| (*s).to_owned()).collect()
        }
    };
    assert_eq!(from_spec, ESCROW_STATES, "SPEC.md §1 states vs the states this test knows");
    let states: Vec<&str> = c
        .openapi
        .components
        .schemas
        .get("EscrowState")
        .and_then(|s| s.get("enum"))
        .and_then(Value::as_array)
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(states, ESCROW_STATES, "{OPENAPI}: components.schemas.EscrowState.enum");
}

#[test]
fn realtime_contract_is_consistent() {
    let c = load_all();
    let rt = &c.realtime;
    let mut problems = Vec::new();
    if rt.namespace != "/" || rt.path != "/socket.io/" || rt.engine_io_version != 4 {
        problems.push(format!("{REALTIME}: namespace \"/\", path \"/socket.io/\", engine_io_version 4"));
    }
    if rt.transports != ["websocket"] {
        problems.push(format!("{REALTIME}: field transports"));
    }
    let hs = &rt.handshake;
    if hs.auth_payload.keys().map(String::as_str).collect::<Vec<_>>() != ["token"] {
        problems.push(format!("{REALTIME}: handshake.auth_payload must be {{token}} (RT-1)"));
    }
    if hs.query_token_accepted || hs.anonymous_sockets || hs.connect_error_when.is_empty() {
        problems.push(format!("{REALTIME}: handshake: no query-string token, no anonymous sockets (RT-1, RT-2)"));
    }
    let rooms: BTreeSet<&str> = rt.room.iter().map(|r| r.name.as_str()).collect();
    if rooms != BTreeSet::from(["user:{user_id}", "staff", "escrow:{escrow_id}"]) {
        problems
            .push(format!("{REALTIME}: rooms must be user:{{user_id}}, staff and escrow:{{escrow_id}}, are {rooms:?}"));
    }
    for room in &rt.room {
        if room.joined.trim().is_empty() || room.members.trim().is_empty() {
            problems.push(format!("{REALTIME}: [[room]] {}: fields joined and members must say who", room.name));
        }
    }
    let mut names = BTreeSet::new();
    for event in &rt.event {
        let at = format!("{REALTIME}: [[event]] {}", event.name);
        if !names.insert(event.name.as_str()) {
            problems.push(format!("{at}: duplicate event"));
        }
        if event.description.trim().is_empty() || event.payload.is_empty() {
            problems.push(format!("{at}: fields description and payload must not be empty"));
        }
        for field in &event.payload {
            if rt.forbidden_payload_fields.contains(field) {
                problems.push(format!("{at}: payload carries the forbidden field {field} (RT-9)"));
            }
        }
        for code in &event.ack_errors {
            if Refusal::from_code(code).is_none() {
                problems.push(format!("{at}: ack_errors names {code:?}, which is no Refusal code"));
            }
        }
        if event.direction == Direction::Server && (event.ack_ok.is_some() || !event.ack_errors.is_empty()) {
            problems.push(format!("{at}: server events have no ack"));
        }
        if event.direction == Direction::Client && event.ack_ok.is_none() {
            problems.push(format!("{at}: client events are acknowledged (field ack_ok)"));
        }
        if let Some(op) = &event.operation
            && let Err(e) = OperationKind::parse(op)
        {
            problems.push(format!("{at}: field operation: {e}"));
        }
    }
    let find = |name: &str| rt.event.iter().find(|e| e.name == name);
    match find("escrow:subscribe") {
        Some(e) => {
            let ok = e.ack_ok.as_ref().and_then(|a| a.get("ok")).and_then(Value::as_bool);
            if e.operation.as_deref() != Some("subscribe_escrow")
                || e.direction != Direction::Client
                || ok != Some(true)
            {
                problems.push(format!(
                    "{REALTIME}: escrow:subscribe binds subscribe_escrow, client event, ack {{ok:true}}"
                ));
            }
            for code in ["not_found", "rate_limited"] {
                if !e.ack_errors.iter().any(|c| c == code) || !e.required {
                    problems.push(format!("{REALTIME}: escrow:subscribe must be required and ack {{error:{code:?}}}"));
                }
            }
            if e.payload != ["escrow_id"] {
                problems.push(format!("{REALTIME}: escrow:subscribe payload is {{escrow_id}} (RT-3)"));
            }
        }
        None => problems.push(format!("{REALTIME}: no escrow:subscribe event")),
    }
    match find("escrow:updated") {
        Some(e) if e.payload == ["escrow_id", "state", "version"] && e.direction == Direction::Server && e.required => {
        }
        _ => problems
            .push(format!("{REALTIME}: escrow:updated is a required server event {{escrow_id, state, version}}")),
    }
    let bound: Vec<&str> = rt.event.iter().filter_map(|e| e.operation.as_deref()).collect();
    if bound != ["subscribe_escrow"] {
        problems.push(format!("{REALTIME}: exactly one event binds an operation (subscribe_escrow), found {bound:?}"));
    }
    if !rt.forbidden_payload_fields.iter().any(|f| f == "token") {
        problems.push(format!("{REALTIME}: forbidden_payload_fields must include token (RT-9)"));
    }
    // Delivery: one row per principal class; "never" exactly where subscribe_escrow is refused.
    let subscribe = matrix_row(&c, "subscribe_escrow");
    for class in PrincipalClass::ALL {
        let rows: Vec<&Delivery> = rt.delivery.iter().filter(|d| d.principal == class.name()).collect();
        let [delivery] = rows.as_slice() else {
            problems.push(format!("{REALTIME}: expected one [[delivery]] for {}, found {}", class.name(), rows.len()));
            continue;
        };
        let refused = subscribe.is_none_or(|row| row.cell(class) != Cell::Allow);
        if (delivery.escrow_updated == Reception::Never) != refused {
            problems.push(format!(
                "{REALTIME}: [[delivery]] {}: escrow_updated {:?}, but the matrix {} subscribe_escrow",
                class.name(),
                delivery.escrow_updated,
                if refused { "refuses" } else { "allows" }
            ));
        }
        let participant = matches!(class, PrincipalClass::Buyer | PrincipalClass::Seller);
        if (delivery.escrow_updated == Reception::Always) != participant {
            problems.push(format!("{REALTIME}: [[delivery]] {}: always exactly for participants (RT-4)", class.name()));
        }
        if delivery.note.as_deref().is_some_and(|n| n.trim().is_empty()) {
            problems.push(format!("{REALTIME}: [[delivery]] {}: empty note", class.name()));
        }
    }
    if rt.delivery.len() != PrincipalClass::ALL.len() {
        problems.push(format!("{REALTIME}: [[delivery]] rows must be one per principal class"));
    }
    let limit = |id: &str| rt.limit.iter().find(|l| l.id == id);
    let expect = |ok: bool, what: &str, problems: &mut Vec<String>| {
        if !ok {
            problems.push(format!("{REALTIME}: [[limit]] {what}"));
        }
    };
    expect(
        limit("rate").is_some_and(|l| {
            l.events_per_second == Some(20)
                && l.ack_error.as_deref() == Some(Refusal::RateLimited.code())
                && l.rules.iter().any(|r| r == "RT-5")
        }),
        "rate: 20 events/s, ack rate_limited, RT-5",
        &mut problems,
    );
    expect(
        limit("sustained_abuse")
            .is_some_and(|l| l.sustained_seconds == Some(5) && l.action.as_deref() == Some("disconnect")),
        "sustained_abuse: 5 s, disconnect",
        &mut problems,
    );
    expect(
        limit("revocation").is_some_and(|l| l.within_seconds == Some(2) && l.rules.iter().any(|r| r == "RT-6")),
        "revocation: within 2 s, RT-6",
        &mut problems,
    );
    expect(
        limit("staff_role_loss").is_some_and(|l| l.within_seconds == Some(2) && l.rules.iter().any(|r| r == "RT-7")),
        "staff_role_loss: within 2 s, RT-7",
        &mut problems,
    );
    expect(limit("malformed").is_some_and(|l| l.rules.iter().any(|r| r == "RT-8")), "malformed: RT-8", &mut problems);
    for l in &rt.limit {
        if l.description.trim().is_empty() {
            problems.push(format!("{REALTIME}: [[limit]] {}: empty description", l.id));
        }
        if let Some(code) = &l.ack_error
            && Refusal::from_code(code).is_none()
        {
            problems.push(format!("{REALTIME}: [[limit]] {}: ack_error {code:?} is no Refusal code", l.id));
        }
    }
    fail_if_any("realtime contract", &problems);
}

#[test]
fn launch_criteria_cover_the_seed_report_and_the_drills() {
    let c = load_all();
    let lc = &c.launch;
    let mut problems = Vec::new();
    if lc.gate.unverified_blocking != "fail" {
        problems.push(format!("{LAUNCH}: gate.unverified_blocking must be \"fail\" (SPEC §10)"));
    }
    for field in ["reason", "approver_role", "expires"] {
        if !lc.gate.waiver_fields.iter().any(|f| f == field) {
            problems.push(format!("{LAUNCH}: gate.waiver_fields must include {field} (SPEC §10)"));
        }
    }
    let mut ids = BTreeSet::new();
    let mut seed_items = BTreeSet::new();
    let mut evidenced = BTreeSet::new();
    for criterion in &lc.criterion {
        let at = format!("{LAUNCH}: criterion {}", criterion.id);
        if !ids.insert(criterion.id.as_str()) {
            problems.push(format!("{at}: duplicate id"));
        }
        if !criterion.id.starts_with("LC-") || criterion.title.trim().is_empty() {
            problems.push(format!("{at}: id must start with LC- and title must not be empty"));
        }
        if !lc.owners.contains(&criterion.owner) {
            problems.push(format!("{at}: field owner {:?} is not one of owners", criterion.owner));
        }
        let ev = &criterion.evidence;
        if ev.rules.is_empty() || ev.tags.is_empty() || ev.suites.is_empty() {
            problems.push(format!("{at}: evidence.rules, .tags and .suites must not be empty"));
        }
        for suite in &ev.suites {
            let base = suite.split('/').next().unwrap_or("");
            if !SUITES.contains(&base) {
                problems.push(format!("{at}: evidence.suites names {suite:?}; known suites are {SUITES:?}"));
            }
        }
        evidenced.extend(ev.rules.iter().map(String::as_str));
        if let Some(item) = criterion.seed_item {
            seed_items.insert(item);
        }
        if !criterion.blocking && criterion.seed_item.is_some() {
            problems.push(format!("{at}: what the seed report requires before launch is blocking"));
        }
    }
    let expected_items = seed_section_five_items().unwrap_or_else(|| {
        println!("note: seed report not found; assuming its section 5 lists 7 items");
        7
    });
    let expected: BTreeSet<u8> = (1..=expected_items as u8).collect();
    if seed_items != expected {
        problems.push(format!(
            "{LAUNCH}: seed_item values {seed_items:?}, expected one criterion or more for each of {expected:?}"
        ));
    }
    for id in ["LC-LEDGER", "LC-AUDIT"] {
        if !ids.contains(id) {
            problems.push(format!("{LAUNCH}: no criterion {id}"));
        }
    }
    for rule in &c.rules.rule {
        let family = rule.id.split('-').next().unwrap_or("");
        if matches!(family, "DRL" | "LED") && !evidenced.contains(rule.id.as_str()) {
            problems.push(format!("{LAUNCH}: no criterion has {} in its evidence", rule.id));
        }
    }
    fail_if_any("launch criteria", &problems);
}
