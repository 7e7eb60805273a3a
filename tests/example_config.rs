//! toxtun.ini.example must parse, with no warnings, to the built-in defaults.

use std::path::Path;

use toxtun::config::Settings;

#[test]
fn example_config_parses_cleanly_to_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("toxtun.ini.example");
    let settings = Settings::load(&path).unwrap();
    assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
    let defaults = Settings::defaults(path.parent().unwrap().join("toxtun.key"));
    assert_eq!(settings.node.key_file, defaults.node.key_file);
    assert_eq!(settings.node.keepalive, defaults.node.keepalive);
    assert_eq!(settings.node.friend_timeout, defaults.node.friend_timeout);
    assert_eq!(settings.server.allow, defaults.server.allow);
    assert_eq!(
        settings.server.connect_timeout,
        defaults.server.connect_timeout
    );
    assert_eq!(settings.kcp, defaults.kcp);
    assert_eq!(settings.tunnel.open_timeout, defaults.tunnel.open_timeout);
    assert_eq!(settings.tunnel.idle_timeout, defaults.tunnel.idle_timeout);
    assert_eq!(
        settings.tunnel.udp_idle_timeout,
        defaults.tunnel.udp_idle_timeout
    );
    assert_eq!(settings.node.proxy, defaults.node.proxy);
    assert!(settings.client.is_empty() && settings.peers.is_empty());
}
