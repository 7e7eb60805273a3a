//! The `[kcp]` section: a kcptun mode name, or `manual` and each knob.

use super::values::parse_flag;
use crate::proto::tunnel::kcp_settings::{KcpMode, KcpSettings, MAX_KCP_MTU};

/// Sets one `[kcp]` key; Ok(false) for a key it does not know.
pub fn set(settings: &mut KcpSettings, key: &str, value: &str) -> Result<bool, String> {
    let number = |max: u64| -> Result<u64, String> {
        value
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("'{value}' is not a number from 0 to {max}"))
    };
    let flag = || parse_flag(value);
    match key {
        "mode" => {
            settings.mode = match value {
                "normal" => KcpMode::Normal,
                "fast" => KcpMode::Fast,
                "fast2" => KcpMode::Fast2,
                "fast3" => KcpMode::Fast3,
                "manual" => KcpMode::Manual,
                other => {
                    return Err(format!(
                        "unknown mode '{other}' (normal, fast, fast2, fast3 or manual)"
                    ))
                }
            };
            settings.apply_mode();
        }
        "nodelay" => settings.nodelay = flag()?,
        "interval" => settings.interval_ms = number(5000)? as u32,
        "resend" => settings.resend = number(100)? as u32,
        "nc" => settings.no_congestion_control = flag()?,
        "sndwnd" => settings.send_window = number(u16::MAX as u64)? as u16,
        "rcvwnd" => settings.receive_window = number(u16::MAX as u64)? as u16,
        "mtu" => settings.mtu = number(MAX_KCP_MTU as u64)? as usize,
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_set_their_presets_and_manual_keeps_knobs() {
        let mut k = KcpSettings::default();
        set(&mut k, "mode", "normal").unwrap();
        assert!(!k.nodelay && k.interval_ms == 40);
        set(&mut k, "mode", "manual").unwrap();
        set(&mut k, "interval", "15").unwrap();
        set(&mut k, "nodelay", "1").unwrap();
        assert!(k.nodelay && k.interval_ms == 15);
        assert!(set(&mut k, "mode", "ludicrous").is_err());
        assert!(set(&mut k, "mtu", "9000").is_err());
        assert_eq!(set(&mut k, "colour", "blue"), Ok(false));
    }
}
