//! The command line contract: IDs, key file permissions, config errors.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{binary, write_config};

fn toxtun(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn id_is_stable_one_line_and_key_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "node", "");
    let config = config.to_str().unwrap();
    let first = toxtun(&["-config", config, "id"], dir.path());
    let second = toxtun(&["--config", config, "id"], dir.path());
    assert!(
        first.status.success() && second.status.success(),
        "{}",
        stderr(&first)
    );
    let text = String::from_utf8(first.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1);
    let id = text.trim_end_matches('\n');
    assert_eq!(id.len(), 76);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{id}"
    );
    assert_eq!(first.stdout, second.stdout);
    let key = dir.path().join("node.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = toxtun(&["-c", config, "server"], dir.path());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(key.to_str().unwrap()),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn id_without_config_uses_the_home_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = toxtun(&["id"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let key = dir.path().join(".config/toxtun/toxtun.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

const GOOD_ID: &str =
    "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

fn rejected(body: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "bad", body);
    let out = toxtun(&["-config", config.to_str().unwrap(), "client"], dir.path());
    assert!(!out.status.success(), "accepted: {body}");
    let err = stderr(&out);
    for needle in expect {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

#[test]
fn bad_ids_are_rejected_with_file_line_and_reason() {
    let mut wrong_sum = GOOD_ID.to_string();
    wrong_sum.replace_range(75..76, "A");
    rejected(
        &format!("[client]\nt = *:81:127.0.0.1:80:{wrong_sum}\n"),
        &["bad.ini:4", "[client] t", "checksum"],
    );
    rejected(
        &format!("[client]\nt = *:81:127.0.0.1:80:{}\n", &GOOD_ID[..74]),
        &["bad.ini:4", "74"],
    );
    let mut not_hex = GOOD_ID.to_string();
    not_hex.replace_range(3..4, "x");
    rejected(
        &format!("[server]\nfriends = {not_hex}\n"),
        &["bad.ini:4", "[server] friends", "'x' is not a hex digit"],
    );
    rejected(
        &format!("[peers]\n{wrong_sum} = 127.0.0.1:1\n"),
        &["bad.ini:4", "checksum"],
    );
}

#[test]
fn bad_addresses_are_rejected_with_file_line_and_reason() {
    rejected(
        "listen = 127.0.0.1:70000\n",
        &["bad.ini:3", "[node] listen", "70000"],
    );
    rejected("listen = somewhere\n", &["bad.ini:3", "HOST:PORT"]);
    rejected(
        &format!("[peers]\n{GOOD_ID} = 127.0.0.1:x\n"),
        &["bad.ini:4", "'x' is not a port"],
    );
    rejected(
        &format!("[client]\nt = *:81:bad host:80:{GOOD_ID}\n"),
        &["bad.ini:4", "not a host name"],
    );
    rejected(
        &format!("[client]\na = *:81:127.0.0.1:80:{GOOD_ID}\nb = *:81:127.0.0.1:90:{GOOD_ID}\n"),
        &["bad.ini:5", "already used by tunnel 'a'"],
    );
}

#[test]
fn unreadable_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = toxtun(&["-config", "missing.ini", "server"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.ini"), "{}", stderr(&out));
}

#[test]
fn without_a_config_flag_the_default_config_is_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let out = toxtun(&["check"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("no config file (built-in defaults and flags): ok"),
        "{text}"
    );
    let home = dir.path().join(".config").join("toxtun");
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("toxtun.ini");
    std::fs::write(&config, "[node]\nlisten = 127.0.0.1:4\n").unwrap();
    let out = toxtun(&["check"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("{}: ok", config.display())),
        "{text}"
    );
    assert!(text.contains("listen     UDP 127.0.0.1:4"), "{text}");
    assert!(
        text.contains(&format!("identity   {}", home.join("toxtun.key").display())),
        "{text}"
    );
}

#[test]
fn version_names_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = toxtun(&["--version"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        text.trim(),
        format!("toxtun {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn nospam_new_changes_the_id_but_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "node", "");
    let config = config.to_str().unwrap();
    let id = |args: &[&str]| {
        let out = toxtun(args, dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let first = id(&["-c", config, "id"]);
    assert_eq!(id(&["-c", config, "nospam"]), first);
    let renewed = id(&["-c", config, "nospam", "--new"]);
    assert_ne!(renewed, first);
    assert_eq!(renewed[..64], first[..64], "the key changed");
    assert_eq!(id(&["-c", config, "id"]), renewed);
}

#[test]
fn completions_and_the_manual_page_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let commands = [
        "server",
        "client",
        "connect",
        "id",
        "bootstrap",
        "status",
        "forget",
        "friends",
        "nospam",
        "check",
    ];
    let bash = toxtun(&["completions", "bash"], dir.path());
    assert!(bash.status.success(), "{}", stderr(&bash));
    let script = String::from_utf8(bash.stdout).unwrap();
    for command in commands {
        assert!(
            script.contains(command),
            "{command} missing from:\n{script}"
        );
    }
    let script_path = dir.path().join("toxtun.bash");
    std::fs::write(&script_path, &script).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script_path)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));

    let man = toxtun(&["man"], dir.path());
    assert!(man.status.success(), "{}", stderr(&man));
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains("\n.TH toxtun 1 "), "{}", &page[..200]);
    for command in commands {
        let heading = format!(".SH \"TOXTUN {}\"", command.to_uppercase());
        assert!(page.contains(&heading), "{heading} missing");
    }
    // A command's own options are on the page, not only its name.
    assert!(page.contains("[LHOST:]LPORT:THOST:TPORT"), "-L missing");
    assert!(page.contains("\\-\\-json"), "--json missing");

    let unknown = toxtun(&["completions", "tcsh"], dir.path());
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("possible values"),
        "{}",
        stderr(&unknown)
    );
}
