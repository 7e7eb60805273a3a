use super::*;

const SERVER_ID: &str =
    "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(Path::new("/etc/toxtun.ini"), text)
}

fn error_of(text: &str) -> String {
    parse(text).expect_err("config should be rejected").0
}

#[test]
fn go_toxtun_config_parses() {
    let s = parse(&format!(
        "[server]\nname = whttpd\n\n[client]\ntoxtun1 = *:81:127.0.0.1:8181:{SERVER_ID}\n"
    ))
    .unwrap();
    assert_eq!(s.client.len(), 1);
    assert_eq!(s.client[0].listen.port(), 81);
    assert_eq!(s.client[0].target(), "127.0.0.1:8181");
    assert_eq!(s.client[0].server.to_string(), SERVER_ID);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn inline_comments_and_defaults() {
    let s =
        parse("[node]\nkey_file = my.key   ; secret\nlisten = 127.0.0.1:0 ; any port\n").unwrap();
    assert_eq!(s.node.key_file, Path::new("/etc/my.key"));
    assert_eq!(s.node.listen, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(s.server.allow, default_allow());
}

#[test]
fn bootstrap_lines_add_up() {
    let s = parse(&format!(
        "[node]\nbootstrap = a.example:1:{SERVER_ID}, b.example:2:{SERVER_ID}\nbootstrap = c.example:3:{SERVER_ID}\n"
    ))
    .unwrap();
    let hosts: Vec<String> = s
        .node
        .bootstrap
        .iter()
        .map(|(h, _)| h.to_string())
        .collect();
    assert_eq!(hosts, ["a.example:1", "b.example:2", "c.example:3"]);
}

#[test]
fn bad_checksum_names_file_line_and_reason() {
    let mut id = SERVER_ID.to_string();
    id.replace_range(0..1, "B");
    let err = error_of(&format!("[client]\n\nt1 = *:81:127.0.0.1:8181:{id}\n"));
    assert!(err.starts_with("/etc/toxtun.ini:3: [client] t1:"), "{err}");
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn bad_length_and_non_hex_ids_are_rejected() {
    let err = error_of(&format!(
        "[client]\nt1 = *:81:127.0.0.1:8181:{}\n",
        &SERVER_ID[..70]
    ));
    assert!(
        err.contains("/etc/toxtun.ini:2") && err.contains("70"),
        "{err}"
    );
    let mut id = SERVER_ID.to_string();
    id.replace_range(5..6, "Z");
    let err = error_of(&format!("[server]\nfriends = {id}\n"));
    assert!(
        err.contains("/etc/toxtun.ini:2") && err.contains("'Z' is not a hex digit"),
        "{err}"
    );
}

#[test]
fn bad_addresses_are_rejected() {
    let err = error_of("[node]\nlisten = 1.2.3:99999\n");
    assert!(
        err.starts_with("/etc/toxtun.ini:2: [node] listen:"),
        "{err}"
    );
    let err = error_of(&format!("[peers]\n{SERVER_ID} = 127.0.0.1\n"));
    assert!(
        err.contains("/etc/toxtun.ini:2") && err.contains("HOST:PORT"),
        "{err}"
    );
    let err = error_of(&format!("[client]\nt = *:81:127.0.0.1:70000:{SERVER_ID}\n"));
    assert!(
        err.contains("/etc/toxtun.ini:2") && err.contains("70000"),
        "{err}"
    );
}

#[test]
fn duplicate_listen_port_is_rejected() {
    let err = error_of(&format!(
        "[client]\na = *:81:127.0.0.1:1:{SERVER_ID}\nb = *:81:127.0.0.1:2:{SERVER_ID}\n"
    ));
    assert!(
        err.contains("/etc/toxtun.ini:3: [client] b") && err.contains("'a'"),
        "{err}"
    );
}

#[test]
fn a_key_given_twice_is_rejected_with_both_lines() {
    let err = error_of("[server]\nallow = *:22\n\n[server]\nallow = *:80\n");
    assert_eq!(
        err,
        "/etc/toxtun.ini:5: [server] allow: given again (first on line 2); give each key once"
    );
    let err = error_of(&format!(
        "[client]\nt = *:81:127.0.0.1:1:{SERVER_ID}\nt = *:82:127.0.0.1:2:{SERVER_ID}\n"
    ));
    assert!(
        err.starts_with("/etc/toxtun.ini:3: [client] t: given again"),
        "{err}"
    );
    let err = error_of(&format!(
        "[peers]\n{SERVER_ID} = 10.0.0.1:1\n{SERVER_ID} = 10.0.0.2:1\n"
    ));
    assert!(
        err.contains(":3: [peers]") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn unknown_keys_and_sections_warn() {
    let s = parse("[node]\ncolour = blue\n[extra]\nx = 1\n").unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings[0].contains(":2:") && s.warnings[0].contains("colour"));
    assert!(s.warnings[1].contains("[extra]"));
}

#[test]
fn allow_rules_match_host_and_port() {
    let s = parse("[server]\nallow = 10.0.0.5:22, *:8080, [::1]:*\n").unwrap();
    let allows = |h: &str, p| s.server.allow.iter().any(|r| r.permits(h, p));
    assert!(allows("10.0.0.5", 22));
    assert!(!allows("10.0.0.5", 23));
    assert!(allows("example.org", 8080));
    assert!(allows("0:0:0:0:0:0:0:1", 9));
    assert!(!allows("127.0.0.1", 9));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
    assert!(parse_duration("-1").is_err());
    assert!(parse_duration("5 parsecs").is_err());
}

#[test]
fn services_name_their_targets() {
    let s = parse("[services]\nweb = 127.0.0.1:8080\nssh.v6 = [::1]:22\n").unwrap();
    assert_eq!(s.services["web"], "127.0.0.1:8080");
    assert_eq!(s.services["ssh.v6"], "[::1]:22");
    let err = error_of("[services]\nweb = 127.0.0.1\n");
    assert!(
        err.starts_with("/etc/toxtun.ini:2: [services] web:"),
        "{err}"
    );
    assert!(err.contains("expected HOST:PORT"), "{err}");
    let err = error_of("[services]\n8080 = 127.0.0.1:8080\n");
    assert!(err.contains("not a service name"), "{err}");
}

#[test]
fn a_byte_order_mark_does_not_swallow_the_first_section() {
    let s = parse(&format!(
        "\u{feff}[client]\nt = 127.0.0.1:0:127.0.0.1:22:{SERVER_ID}\n"
    ))
    .unwrap();
    assert_eq!(s.client.len(), 1);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn quotes_around_a_value_are_not_part_of_it() {
    let s = parse("[node]\nkey_file = \"q.key\"\n[tunnel]\nidle_timeout = '10s'\n").unwrap();
    assert_eq!(s.node.key_file, Path::new("/etc/q.key"));
    assert_eq!(s.tunnel.idle_timeout, Duration::from_secs(10));
}

#[test]
fn a_config_named_without_a_directory_keeps_its_key_beside_it() {
    let s = Settings::parse(Path::new("toxtun.ini"), "[node]\nkey_file = k.key\n").unwrap();
    assert_eq!(s.node.key_file, Path::new("k.key"));
}

#[test]
fn a_key_file_in_a_missing_directory_is_refused_not_created() {
    let err = error_of("[node]\nkey_file = /no-such-dir-for-toxtun/k.key\n");
    assert!(
        err.starts_with(
            "/etc/toxtun.ini:2: [node] key_file: directory /no-such-dir-for-toxtun does not exist"
        ) && err.contains("new identity, with a new ID"),
        "{err}"
    );
}

#[test]
fn a_psk_that_is_not_64_hex_digits_says_what_it_must_be() {
    for value in ["hunter2", "abcd"] {
        let err = error_of(&format!("[node]\npsk = {value}\n"));
        assert!(
            err.contains("/etc/toxtun.ini:2: [node] psk: must be 64 hex digits (32 bytes)")
                && err.contains("openssl rand -hex 32"),
            "{err}"
        );
    }
    assert!(error_of("[node]\npsk = hunter2\n").contains("not all hex digits"));
}

#[test]
fn a_misspelled_section_is_named_with_the_one_meant() {
    let s = parse(&format!(
        "[clinet]\nt = 127.0.0.1:0:127.0.0.1:22:{SERVER_ID}\n[sever]\nallow = *\n[peer]\n"
    ))
    .unwrap();
    assert_eq!(
        s.warnings,
        [
            "/etc/toxtun.ini:2: unknown section [clinet] is ignored (did you mean [client]?)",
            "/etc/toxtun.ini:4: unknown section [sever] is ignored (did you mean [server]?)",
        ]
    );
}
