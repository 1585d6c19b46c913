//! Profiles (`conform::profile`): the embedded target's profile binds every operation to the canonical API; every
//! mistake in a profile is reported with the file, the line and the field; `conform profile check` validates and
//! probes with the documented exit statuses; the example of docs/profiles.md is a valid profile.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use conform::profile::{Profile, ProfileError, Transport, Vars};
use conform_reference::escrow::EscrowState;
use conform_reference::ops::OperationKind;
use conform_reference::refusal::Refusal;
use serde_json::json;

const EMBEDDED: &str = "contracts/profiles/embedded.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn embedded_text() -> String {
    std::fs::read_to_string(root().join(EMBEDDED)).expect("read embedded.toml")
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} not in the profile")) + 1
}

/// The table of the embedded profile that starts with `header`, up to and including the blank line after it.
fn block_of(header: &str) -> String {
    let text = embedded_text();
    let start = text.find(header).unwrap_or_else(|| panic!("{header} not in the profile"));
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e + 2);
    text[start..end].to_owned()
}

/// Parses the embedded profile with one edit; the error it must give.
fn broken(from: &str, to: &str) -> (String, ProfileError) {
    let text = embedded_text();
    assert!(text.contains(from), "{from:?} not in the profile");
    let text = text.replacen(from, to, 1);
    let error = Profile::parse("broken.toml", &text).expect_err("the edit must be refused");
    (text, error)
}

fn conform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conform")).args(args).current_dir(root()).output().expect("run conform")
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-profile-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("profile.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

/// The embedded profile with `[target]`/`[launch]` replaced: a target of another launch mode.
fn with_launch(http: &str, launch: &str) -> String {
    embedded_text().replacen("http = \"http://127.0.0.1:8080\"", &format!("http = \"{http}\""), 1).replacen(
        "[launch]\nmode = \"embedded\"\n",
        launch,
        1,
    )
}

#[test]
fn embedded_profile_binds_every_operation_to_the_canonical_api() {
    let profile = Profile::load(root().join(EMBEDDED)).expect("embedded.toml loads");
    for op in OperationKind::ALL {
        assert!(profile.operation(*op).is_some(), "{} is not bound", op.name());
        assert_eq!(profile.unsupported_reason(*op), None);
    }
    assert_eq!(profile.environment(), conform::profile::Environment::Test);
    assert_eq!(profile.launch_mode(), conform::profile::LaunchMode::Embedded);
    assert!(profile.capabilities().iter().iter().all(|(_, declared)| *declared), "{:?}", profile.capabilities());
    for state in EscrowState::ALL {
        assert_eq!(profile.canonical_state(state.name()), Some(state));
    }
    assert_eq!(profile.canonical_state("paid"), None);
    for refusal in Refusal::ALL {
        let body = json!({"error": refusal.code(), "message": "x"});
        assert_eq!(profile.canonical_error(refusal.http_status(), &body), Some(refusal), "{refusal}");
    }
    assert_eq!(profile.canonical_error(401, &json!("<html>")), Some(Refusal::Unauthenticated));
    assert_eq!(profile.canonical_error(200, &json!({"error": "forbidden"})), None);

    let create = profile.operation(OperationKind::CreateEscrow).unwrap();
    let vars = Vars::new()
        .with("seller_id", "0b7c")
        .with("amount", "125.50")
        .with("currency", "USD")
        .with("provider", "shkeeper");
    let request = create.render(&vars).unwrap();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/escrows"));
    assert_eq!(
        request.body,
        Some(json!({"seller_id": "0b7c", "amount": "125.50", "currency": "USD", "provider": "shkeeper"}))
    );
    assert_eq!(create.expect, vec![201]);
    assert_eq!(create.pointers.state.as_deref(), Some("/state"));

    let update = profile.operation(OperationKind::UpdateEscrow).unwrap();
    let vars = Vars::new().with("escrow_id", "e 1").with("version", 3).with("field", "state").with("value", "released");
    let request = update.render(&vars).unwrap();
    assert_eq!(request.path, "/v1/escrows/e%201");
    assert_eq!(request.headers, vec![("If-Match".to_owned(), "3".to_owned())]);
    assert_eq!(request.body, Some(json!({"state": "released"})));
    let missing = update.render(&Vars::new()).unwrap_err();
    assert!(missing.to_string().contains("escrow_id"), "{missing}");

    let list = profile.operation(OperationKind::ListEscrows).unwrap().render(&Vars::new().with("limit", 5)).unwrap();
    assert_eq!(list.path_and_query(), "/v1/escrows?limit=5");

    let subscribe = profile.operation(OperationKind::SubscribeEscrow).unwrap();
    assert_eq!(subscribe.transport, Transport::SocketIo);
    assert_eq!(subscribe.render(&Vars::new().with("escrow_id", "e1")).unwrap().body, Some(json!({"escrow_id": "e1"})));

    let register = profile.operation(OperationKind::PasskeyRegister).unwrap();
    let credential = json!({"id": "c", "rawId": "c", "type": "public-key", "response": {}});
    assert_eq!(register.render(&Vars::new().with("credential", credential.clone())).unwrap().body, Some(credential));

    let shkeeper = profile.webhook("shkeeper").expect("shkeeper webhook");
    assert_eq!((shkeeper.path.as_str(), shkeeper.success_status), ("/v1/webhooks/shkeeper", 202));
    assert_eq!(profile.webhook("standard").unwrap().path, "/v1/webhooks/standard/standard");
}

#[test]
fn the_embedded_profile_matches_openapi_routes() {
    let profile = Profile::load(root().join(EMBEDDED)).unwrap();
    let yaml = std::fs::read_to_string(root().join("contracts/openapi.yaml")).unwrap();
    for op in OperationKind::ALL {
        let binding = profile.operation(*op).unwrap();
        if binding.transport == Transport::Http && *op != OperationKind::DeliverWebhook {
            let path = binding.path.replace("{provider_name}", "{provider}");
            let header = format!("\n  {path}:\n");
            let at = yaml.find(&header).unwrap_or_else(|| panic!("{}: {path} is not in openapi.yaml", op.name()));
            let section = &yaml[at..];
            let method = format!("\n    {}:\n      operationId: {}\n", binding.method.to_lowercase(), op.name());
            let end = section[header.len()..].find("\n  /").map_or(section.len(), |e| e + header.len());
            assert!(section[..end].contains(&method), "{}: {} {path} is not its route", op.name(), binding.method);
        }
    }
}

#[test]
fn a_misspelled_field_names_the_file_line_and_field() {
    let (text, error) = broken("token_pointer = \"/access_token\"", "token_pointr = \"/access_token\"");
    assert_eq!(error.line(), Some(line_of(&text, "token_pointr")), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("broken.toml:"), "{message}");
    assert!(message.contains("token_pointr"), "{message}");

    let (text, error) =
        broken("path = \"/v1/escrows/{escrow_id}/refund\"", "paht = \"/v1/escrows/{escrow_id}/refund\"");
    assert_eq!(error.line(), Some(line_of(&text, "paht =")), "{error}");
    assert!(error.to_string().contains("paht"), "{error}");
}

#[test]
fn a_missing_operation_is_named_with_its_line() {
    let (text, error) = broken(&block_of("[operations.cancel_escrow]"), "");
    assert!(!text.contains("cancel_escrow"));
    let message = error.to_string();
    assert!(message.contains("missing operation cancel_escrow"), "{message}");
    assert_eq!(error.field(), Some("operations.cancel_escrow"));
    assert_eq!(error.line(), Some(line_of(&text, "[operations.")), "{message}");
    assert!(message.starts_with(&format!("broken.toml:{}: ", line_of(&text, "[operations."))), "{message}");
    drop(text);

    let (text, error) = broken("[operations.cancel_escrow]", "[operations.cancel_escrw]");
    assert_eq!(error.line(), Some(line_of(&text, "cancel_escrw")), "{error}");
    assert_eq!(error.field(), Some("operations.cancel_escrw"));
    assert!(error.to_string().contains("unknown operation"), "{error}");
}

#[test]
fn an_unknown_template_variable_names_the_file_line_and_field() {
    let (text, error) = broken("path = \"/v1/escrows/{escrow_id}/cancel\"", "path = \"/v1/escrows/{escrow}/cancel\"");
    assert_eq!(error.line(), Some(line_of(&text, "{escrow}/cancel")), "{error}");
    assert_eq!(error.field(), Some("operations.cancel_escrow.path"));
    assert!(error.to_string().contains("unknown variable `{escrow}`"), "{error}");

    let (text, error) = broken(
        "provider = \"{provider}\", description = \"{description}\"",
        "provider = \"{provider}\", description = \"{descr}\"",
    );
    assert_eq!(error.line(), Some(line_of(&text, "{descr}")), "{error}");
    assert_eq!(error.field(), Some("operations.create_escrow.body"));
}

#[test]
fn a_configuration_fixture_that_cannot_carry_its_switches_names_its_line() {
    let body =
        "body = { passkeys_enabled = \"{passkeys_enabled}\", provider = \"{provider}\", enabled = \"{enabled}\" }";
    let (text, error) = broken(body, "body = { passkeys_enabled = \"{passkeys_enabled}\", provider = \"{provider}\" }");
    assert_eq!(error.line(), Some(line_of(&text, "provider = \"{provider}\" }")), "{error}");
    assert_eq!(error.field(), Some("fixtures.configure.body"));
    assert!(error.to_string().contains("never names {enabled}"), "{error}");

    let (text, error) =
        broken(body, "body = { passkeys = \"{passkeys}\", provider = \"{provider}\", enabled = \"{enabled}\" }");
    assert_eq!(error.line(), Some(line_of(&text, "{passkeys}")), "{error}");
    assert_eq!(error.field(), Some("fixtures.configure.body"));
    assert!(error.to_string().contains("unknown variable `{passkeys}`"), "{error}");

    let (text, error) = broken("path = \"/v1/test/config\"", "path = \"v1/test/config\"");
    assert_eq!(error.line(), Some(line_of(&text, "\"v1/test/config\"")), "{error}");
    assert_eq!(error.field(), Some("fixtures.configure.path"));

    // The fixture is optional: without it the profile is valid, and the adapter has no configuration route.
    let text = std::fs::read_to_string(root().join(EMBEDDED)).expect("profile");
    let start = text.find("[fixtures.configure]").expect("the embedded profile binds it");
    let end = start + text[start..].find("\n\n").expect("a blank line after it");
    let without = format!("{}{}", &text[..start], &text[end..]);
    assert!(Profile::parse("t.toml", &without).expect("valid").configure_route().is_none());
}

#[test]
fn an_unmapped_or_unknown_state_names_the_line() {
    let (text, error) = broken("expired = \"expired\"\n", "");
    assert_eq!(error.line(), Some(line_of(&text, "[states]")), "{error}");
    assert_eq!(error.field(), Some("states"));
    assert!(error.to_string().contains("not mapped: expired"), "{error}");

    let (text, error) = broken("expired = \"expired\"", "expired = \"expird\"");
    assert_eq!(error.line(), Some(line_of(&text, "\"expird\"")), "{error}");
    assert_eq!(error.field(), Some("states.expired"));
}

#[test]
fn unknown_refusal_codes_and_unbacked_capabilities_are_refused_with_their_line() {
    let (text, error) = broken("malformed = \"malformed\"", "malformed = \"bad_request\"");
    assert_eq!(error.line(), Some(line_of(&text, "bad_request")), "{error}");
    assert_eq!(error.field(), Some("errors.codes.malformed"));

    let unsupported = "[operations.read_ledger]\nunsupported = \"no ledger endpoint\"\n\n";
    let block = block_of("[operations.read_ledger]");
    let (text, error) = broken(&block, unsupported);
    assert_eq!(error.field(), Some("capabilities.ledger_read"), "{error}");
    assert_eq!(error.line(), Some(line_of(&text, "ledger_read = true")));

    let text =
        embedded_text().replacen(&block, unsupported, 1).replacen("ledger_read = true", "ledger_read = false", 1);
    let profile = Profile::parse("ok.toml", &text).expect("an unsupported operation with its capability off");
    assert!(profile.operation(OperationKind::ReadLedger).is_none());
    assert_eq!(profile.unsupported_reason(OperationKind::ReadLedger), Some("no ledger endpoint"));
    assert!(!profile.capabilities().ledger_read);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let profile = Profile::load(root().join(EMBEDDED)).unwrap();
    let debug = format!("{profile:?} {:?}", profile.webhooks().collect::<Vec<_>>());
    for secret in ["conform-shkeeper-key", "conform-rn-webhook-secret", "whsec_Y29uZm9y"] {
        assert!(!debug.contains(secret), "{secret} in Debug output");
    }
    assert!(debug.contains("[redacted]"));
    assert_eq!(profile.webhook("shkeeper").unwrap().secret().unwrap().expose(), "conform-shkeeper-key");

    // A started target's environment may carry secrets too: names that look secret are hidden.
    let launch = "[launch]\nmode = \"command\"\nprogram = \"backend\"\nenv = { SHKEEPER_API_KEY = \"topsecret-xyz\", PORT = \"3000\" }\nreadiness = { path = \"/health\" }\n";
    let profile = Profile::parse("command.toml", &with_launch("http://127.0.0.1:3000", launch)).unwrap();
    let debug = format!("{profile:?}");
    assert!(!debug.contains("topsecret-xyz"), "{debug}");
    assert!(debug.contains("3000"));
}

#[test]
fn the_example_in_docs_profiles_md_is_a_valid_profile() {
    let doc = std::fs::read_to_string(root().join("docs/profiles.md")).expect("docs/profiles.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = doc[start..].find("```").expect("end of the block") + start;
    let profile = Profile::parse("docs/profiles.md", &doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile.canonical_state("AWAITING_PAYMENT"), Some(EscrowState::AwaitingPayment));
    assert_eq!(
        profile.canonical_error(409, &json!({"error": {"code": "ESCROW_STATE_CONFLICT", "message": "x"}})),
        Some(Refusal::InvalidTransition)
    );
    assert!(profile.csrf().is_some());
    assert_eq!(profile.role_name("support"), "agent");
    let command = profile.create_user_command().expect("a command fixture");
    let argv = command
        .render(&Vars::new().with("role", "agent").with("username", "a@x").with("password", "p").with("totp_seed", "S"))
        .unwrap();
    assert!(argv.windows(2).any(|w| w == ["--role", "agent"]), "{argv:?}");
    let create = profile.operation(OperationKind::CreateEscrow).unwrap();
    let body = create
        .render(
            &Vars::new()
                .with("seller_id", "s")
                .with("amount", "1.00")
                .with("currency", "USD")
                .with("provider", "shkeeper"),
        )
        .unwrap()
        .body;
    assert_eq!(
        body,
        Some(json!({"sellerId": "s", "price": {"value": "1.00", "currency": "USD"}, "paymentProvider": "shkeeper"}))
    );
    assert_eq!(
        profile.unsupported_reason(OperationKind::ReadAuditLog),
        Some("the audit trail goes to an external SIEM")
    );
    assert_eq!(profile.auth().send.get_ref(), &conform::profile::TokenTransport::Cookie);
}

#[test]
fn profile_check_offline_accepts_the_embedded_profile() {
    let out = conform(&["profile", "check", EMBEDDED, "--offline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("probe: not started"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ledger_read") && l.contains("yes")), "{stdout}");
}

#[test]
fn profile_check_reports_an_invalid_profile_with_status_2() {
    let text = embedded_text().replacen("[operations.cancel_escrow]", "[operations.cancel_escrw]", 1);
    let path = scratch("invalid", &text);
    let out = conform(&["profile", "check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("profile.toml:{}:", line_of(&text, "cancel_escrw"))), "{stderr}");
}

#[test]
fn profile_check_of_a_target_that_is_down_exits_3_quickly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let path = scratch("down", &with_launch(&format!("http://127.0.0.1:{port}"), "[launch]\nmode = \"running\"\n"));
    let started = Instant::now();
    let out = conform(&["profile", "check", path.to_str().unwrap()]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(stderr.contains("down") && stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn profile_check_refuses_container_mode_without_docker() {
    let launch = "[launch]\nmode = \"container\"\nimage = \"example/escrow:1\"\nports = [8080]\n";
    let path = scratch("container", &with_launch("http://127.0.0.1:8080", launch));
    let out = Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(["profile", "check", path.to_str().unwrap()])
        .env("DOCKER_HOST", "unix:///nonexistent/conform-test/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no Docker engine reachable ("), "{stderr}");
    assert!(stderr.contains("use mode = \"command\" or \"running\""), "{stderr}");
}

#[test]
fn profile_check_probes_a_running_target() {
    // A minimal target: only the readiness path and the test fixture route answer; everything else is 404.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten().take(16) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let status = if request.starts_with("GET /health ") {
                "200 OK"
            } else if request.starts_with("POST /v1/test/users ") {
                "422 Unprocessable Entity"
            } else {
                "404 Not Found"
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let launch = "[launch]\nmode = \"running\"\nreadiness = { path = \"/health\" }\n";
    let text = with_launch(&format!("http://127.0.0.1:{port}"), launch)
        .replacen("ledger_read = true", "ledger_read = false", 1)
        .replacen("dead_letters = true", "dead_letters = false", 1)
        .replacen("audit_log = true", "audit_log = false", 1)
        .replacen("test_clock = true", "test_clock = false", 1)
        .replacen("passkeys = true", "passkeys = false", 1);
    let path = scratch("running", &text);
    let out = conform(&["profile", "check", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("fixtures") && l.contains("present")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ledger_read") && l.contains("absent")), "{stdout}");

    // Declaring a capability the target lacks is a configuration error.
    let path = scratch("running-claim", &text.replacen("passkeys = false", "passkeys = true", 1));
    let out = conform(&["profile", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("declared but absent"));
}
