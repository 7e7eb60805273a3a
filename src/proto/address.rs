//! HOST:PORT as users write it: IPv4, [IPv6], or a name; `*` for any.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    /// None for `*`.
    pub port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// Splits on ':' but keeps a bracketed IPv6 address whole (brackets removed).
pub fn split_fields(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = text;
    loop {
        let (field, after) = if let Some(inner) = rest.strip_prefix('[') {
            let end = inner
                .find(']')
                .ok_or_else(|| format!("'{text}': '[' without a closing ']'"))?;
            let after = &inner[end + 1..];
            if !after.is_empty() && !after.starts_with(':') {
                return Err(format!("'{text}': expected ':' after ']'"));
            }
            (&inner[..end], after)
        } else {
            match rest.find(':') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        fields.push(field.trim().to_string());
        match after.strip_prefix(':') {
            Some(next) => rest = next,
            None => return Ok(fields),
        }
    }
}

pub fn parse_port(text: &str, whole: &str) -> Result<Option<u16>, String> {
    if text == "*" {
        return Ok(None);
    }
    text.parse::<u16>()
        .map(Some)
        .map_err(|_| format!("'{whole}': '{text}' is not a port (0-65535 or *)"))
}

pub fn check_host(host: &str, whole: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && (host == "*"
            || host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{whole}': '{host}' is not a host name or IP address"
        ))
    }
}

pub fn parse_host_port(text: &str) -> Result<HostPort, String> {
    let text = text.trim();
    let fields = split_fields(text)?;
    let [host, port] = fields.as_slice() else {
        return Err(format!(
            "'{text}': expected HOST:PORT (IPv6 in brackets: [::1]:PORT)"
        ));
    };
    check_host(host, text)?;
    Ok(HostPort {
        host: host.clone(),
        port: parse_port(port, text)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            parse_host_port("[::1]:80").unwrap(),
            HostPort {
                host: "::1".into(),
                port: Some(80)
            }
        );
        assert_eq!(parse_host_port("example.org:*").unwrap().port, None);
        assert!(parse_host_port("::1:80").is_err());
        assert!(parse_host_port("host:65536").is_err());
        assert!(parse_host_port("ho st:1").is_err());
        assert!(parse_host_port("[::1:80").is_err());
        assert_eq!(parse_host_port("[::1]:80").unwrap().to_string(), "[::1]:80");
    }
}
