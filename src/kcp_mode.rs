//! KCP tuning as kcptun names it: a mode, or `manual` with each knob set.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KcpMode {
    Normal,
    Fast,
    Fast2,
    Fast3,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KcpSettings {
    pub mode: KcpMode,
    pub nodelay: bool,
    pub interval_ms: u32,
    pub resend: u32,
    pub no_congestion_control: bool,
    pub send_window: u16,
    pub receive_window: u16,
    pub mtu: usize,
}

/// Bytes an outer datagram adds around KCP output: header, tag and the frame
/// header; keeps a full KCP packet inside a 1400-byte UDP payload.
pub const MAX_KCP_MTU: usize = 1350;

impl Default for KcpSettings {
    fn default() -> Self {
        let mut settings = KcpSettings {
            mode: KcpMode::Fast2,
            nodelay: false,
            interval_ms: 0,
            resend: 0,
            no_congestion_control: false,
            send_window: 2048,
            receive_window: 2048,
            mtu: MAX_KCP_MTU,
        };
        settings.apply_mode();
        settings
    }
}

impl KcpSettings {
    /// kcptun's presets: (nodelay, interval, resend, nc).
    fn apply_mode(&mut self) {
        let (nodelay, interval, resend, nc) = match self.mode {
            KcpMode::Normal => (false, 40, 2, true),
            KcpMode::Fast => (false, 30, 2, true),
            KcpMode::Fast2 => (true, 20, 2, true),
            KcpMode::Fast3 => (true, 10, 2, true),
            KcpMode::Manual => return,
        };
        self.nodelay = nodelay;
        self.interval_ms = interval;
        self.resend = resend;
        self.no_congestion_control = nc;
    }

    /// Sets one `[kcp]` key; Ok(false) for a key it does not know.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let number = |max: u64| -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("'{value}' is not a number from 0 to {max}"))
        };
        let flag = || crate::config::parse_flag(value);
        match key {
            "mode" => {
                self.mode = match value {
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
                self.apply_mode();
            }
            "nodelay" => self.nodelay = flag()?,
            "interval" => self.interval_ms = number(5000)? as u32,
            "resend" => self.resend = number(100)? as u32,
            "nc" => self.no_congestion_control = flag()?,
            "sndwnd" => self.send_window = number(u16::MAX as u64)? as u16,
            "rcvwnd" => self.receive_window = number(u16::MAX as u64)? as u16,
            "mtu" => self.mtu = number(MAX_KCP_MTU as u64)? as usize,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.mtu < 100 {
            return Err(format!("mtu {} is below the minimum of 100", self.mtu));
        }
        if self.interval_ms < 10 {
            return Err(format!(
                "interval {} ms is below the minimum of 10",
                self.interval_ms
            ));
        }
        if self.send_window < 16 || self.receive_window < 16 {
            return Err("sndwnd and rcvwnd must be at least 16".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_set_their_presets_and_manual_keeps_knobs() {
        let mut k = KcpSettings::default();
        k.set("mode", "normal").unwrap();
        assert!(!k.nodelay && k.interval_ms == 40);
        k.set("mode", "manual").unwrap();
        k.set("interval", "15").unwrap();
        k.set("nodelay", "1").unwrap();
        assert!(k.nodelay && k.interval_ms == 15);
        assert!(k.set("mode", "ludicrous").is_err());
        assert!(k.set("mtu", "9000").is_err());
        assert_eq!(k.set("colour", "blue"), Ok(false));
    }
}
