//! A scripted FTP server on 127.0.0.1 for what vsftpd cannot show: it announces `MLST`
//! and answers `MLSD`, `LIST`, `SIZE` and `MDTM` from a script, and records every command
//! it is sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The lines of every `MLSD`; `None`: `MLSD` is refused with `500` (though `FEAT`
    /// announces `MLST`).
    pub mlsd: Option<Vec<String>>,
    /// The lines of every `LIST`.
    pub list: Vec<String>,
    /// `(path, size, MDTM time)` for `SIZE` and `MDTM`; other paths get `550`.
    pub files: Vec<(String, u64, String)>,
    /// The final reply of every listing instead of `226` (a `522` as vsftpd sends when
    /// a data connection did not resume the TLS session).
    pub listing_reply: Option<String>,
    /// Refuse every password with a `530` that quotes it back.
    pub refuse_login: bool,
}

/// A running scripted server; stops when dropped.
pub struct Scripted {
    /// Its control port.
    pub port: u16,
    commands: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Starts serving `script` (one session at a time; any user and password log in).
    pub async fn start(script: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&commands);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = session(stream, &script, &seen).await;
            }
        });
        Scripted {
            port,
            commands,
            task,
        }
    }

    /// The command verbs received so far (`USER`, `MLSD`, ...).
    pub fn verbs(&self) -> Vec<String> {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// A source of kind `ftp` for this server, password in `password_file`.
    pub fn spec(&self, password_file: &std::path::Path) -> roster_fetcher::sources::SourceSpec {
        serde_json::from_value(serde_json::json!({
            "kind": "ftp",
            "host": "127.0.0.1",
            "port": self.port,
            "user": "tester",
            "password_file": password_file,
            "path": "/out",
        }))
        .unwrap()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one control connection.
async fn session(
    stream: TcpStream,
    script: &Script,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut passive: Option<TcpListener> = None;
    write.write_all(b"220 scripted\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        seen.lock().unwrap().push(line.clone());
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "USER" => "331 password please".to_owned(),
            "PASS" if script.refuse_login => format!("530 Login incorrect for password {arg}"),
            "PASS" => "230 in".to_owned(),
            "TYPE" => "200 ok".to_owned(),
            "PWD" => "257 \"/\" is the current directory".to_owned(),
            "CWD" => "250 ok".to_owned(),
            "FEAT" => "211-Features:\r\n MLST type*;size*;modify*;\r\n SIZE\r\n MDTM\r\n211 End"
                .to_owned(),
            "PASV" => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let port = listener.local_addr()?.port();
                passive = Some(listener);
                format!(
                    "227 Entering Passive Mode (127,0,0,1,{},{})",
                    port / 256,
                    port % 256
                )
            }
            "MLSD" if script.mlsd.is_none() => "500 Unknown command.".to_owned(),
            "MLSD" | "LIST" => {
                let body = if verb.eq_ignore_ascii_case("MLSD") {
                    script.mlsd.clone().unwrap_or_default()
                } else {
                    script.list.clone()
                };
                let Some(listener) = passive.take() else {
                    write.write_all(b"425 use PASV first\r\n").await?;
                    continue;
                };
                write.write_all(b"150 here it comes\r\n").await?;
                let (mut data, _) = listener.accept().await?;
                let mut text = body.join("\r\n");
                text.push_str("\r\n");
                let sent = data.write_all(text.as_bytes()).await;
                let _ = data.shutdown().await;
                drop(data);
                if let Some(reply) = &script.listing_reply {
                    reply.clone()
                } else if sent.is_ok() {
                    "226 done".to_owned()
                } else {
                    "426 connection closed; transfer aborted".to_owned()
                }
            }
            "SIZE" | "MDTM" => match script.files.iter().find(|(p, _, _)| p == arg) {
                Some((_, size, _)) if verb.eq_ignore_ascii_case("SIZE") => format!("213 {size}"),
                Some((_, _, time)) => format!("213 {time}"),
                None => "550 no such file".to_owned(),
            },
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 not here".to_owned(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}
