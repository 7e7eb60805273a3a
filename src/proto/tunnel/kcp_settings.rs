//! KCP tuning as kcptun names it: a mode, or `manual` with each knob set.
//! Reading these from a config file is `config::kcp`'s job.

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
    /// kcptun's presets: (nodelay, interval, resend). Unlike kcptun's,
    /// they leave congestion control on (`nc` turns it off): without it a
    /// tunnel fills a line's buffer, loses most of what it sends and
    /// crushes or is crushed by the other traffic (doc/tunnels.md).
    pub fn apply_mode(&mut self) {
        let (nodelay, interval, resend) = match self.mode {
            KcpMode::Normal => (false, 40, 2),
            KcpMode::Fast => (false, 30, 2),
            KcpMode::Fast2 => (true, 20, 2),
            KcpMode::Fast3 => (true, 10, 2),
            KcpMode::Manual => return,
        };
        self.nodelay = nodelay;
        self.interval_ms = interval;
        self.resend = resend;
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
