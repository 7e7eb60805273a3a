//! A small HTTP CONNECT proxy for tests: it asks for a user and password,
//! connects where it is told, and keeps a list of where that was.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct HttpProxy {
    pub addr: SocketAddr,
    /// The target of every CONNECT it carried out.
    pub connected: Arc<Mutex<Vec<String>>>,
}

/// Listens on `bind`; a CONNECT without `Proxy-Authorization: Basic
/// {basic}` is answered 407.
pub fn http_proxy(bind: &str, basic: &str) -> HttpProxy {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let connected = Arc::new(Mutex::new(Vec::new()));
    let log = connected.clone();
    let wanted = format!("proxy-authorization: basic {}", basic.to_ascii_lowercase());
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            let wanted = wanted.clone();
            std::thread::spawn(move || serve(client, &wanted, &log));
        }
    });
    HttpProxy { addr, connected }
}

fn serve(mut client: TcpStream, wanted: &str, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let target = head
        .first()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string);
    let authorized = head.iter().any(|l| l.to_ascii_lowercase() == wanted);
    let Some(target) = target.filter(|_| authorized) else {
        let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
        return;
    };
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    log.lock().unwrap().push(target);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .unwrap();
    // Copying from the reader the head came through: what the client sent
    // right after the head is in its buffer and goes first.
    let mut up_writer = upstream.try_clone().unwrap();
    let mut down_reader = upstream;
    let mut down_writer = client;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_writer);
        let _ = up_writer.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut down_reader, &mut down_writer);
    let _ = down_writer.shutdown(Shutdown::Write);
}
