//! File transfers during a run (`--file-mb`): two more clients pass files of the given size
//! through the server, one after the other, for as long as the chat run lasts, the way the
//! clients do (chunks of `FILE_CHUNK` bytes within the flow-control window, an acknowledgement
//! per chunk). The throughput counts the transfers that completed: their bytes over their
//! time from the acceptance to the sender's `FileDone`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::client::{ConnectOptions, connect};
use chat_core::protocol::{ClientFrame, FILE_CHUNK, FILE_WINDOW, ServerFrame};
use serde::Serialize;

/// Transfers measured during a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    /// Transfers that completed.
    pub transfers: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their time, seconds.
    pub secs: f64,
    /// Bytes over time, in megabytes (10^6) per second.
    pub mb_per_s: f64,
}

/// Completed transfers, shared with the task that makes them.
pub type Completed = Arc<Mutex<Vec<(u64, Duration)>>>;

/// Sums up `completed`.
pub fn report(completed: &Completed) -> FileReport {
    let done = completed.lock().map(|v| v.clone()).unwrap_or_default();
    let bytes: u64 = done.iter().map(|(b, _)| b).sum();
    let secs: f64 = done.iter().map(|(_, d)| d.as_secs_f64()).sum();
    FileReport {
        transfers: done.len() as u64,
        bytes,
        secs,
        mb_per_s: if secs > 0.0 {
            bytes as f64 / secs / 1e6
        } else {
            0.0
        },
    }
}

/// Passes files of `size` bytes from one client to another through `server`, one after the
/// other, until the task is dropped; each that completes is added to `completed`.
pub async fn transfers(server: String, size: u64, completed: Completed) -> Result<(), String> {
    let opts = |nick: &str| ConnectOptions::new(nick).client("chat-bench");
    let tx = connect(&server, &opts("bench-file-tx"))
        .await
        .map_err(|e| format!("file sender: {e}"))?;
    let rx = connect(&server, &opts("bench-file-rx"))
        .await
        .map_err(|e| format!("file receiver: {e}"))?;
    if tx.welcome.version < 5 {
        return Err("the server does not pass files on (protocol 5)".into());
    }
    let to = rx.welcome.nick.clone();
    let (mut tx_send, mut tx_events) = (tx.sender, tx.events);
    let (mut rx_send, mut rx_events) = (rx.sender, rx.events);
    let chunk = vec![0x5a_u8; FILE_CHUNK];
    // The content is the same chunk over and over; its hash is worked out once.
    let mut hash = chat_core::files::Sha256::default();
    let mut left = size;
    while left > 0 {
        let n = left.min(FILE_CHUNK as u64) as usize;
        hash.update(&chunk[..n]);
        left -= n as u64;
    }
    let sha256 = hash.finish();
    // The receiver: accepts, acknowledges every chunk, says done at the end.
    let receiver = tokio::spawn(async move {
        let mut received = 0u64;
        loop {
            let Ok(Some(frame)) = rx_events.next().await else {
                return;
            };
            let reply = match frame {
                ServerFrame::FileOffer(info) => {
                    received = 0;
                    Some(ClientFrame::FileAnswer {
                        id: info.id,
                        accept: true,
                    })
                }
                ServerFrame::FileChunk { id, data } => {
                    received += data.len() as u64;
                    Some(ClientFrame::FileAck { id, received })
                }
                _ => None,
            };
            let Some(reply) = reply else { continue };
            let id = match &reply {
                ClientFrame::FileAck { id, .. } => Some(*id),
                _ => None,
            };
            if rx_send.send(&reply).await.is_err() {
                return;
            }
            if let Some(id) = id.filter(|_| received == size)
                && rx_send.send(&ClientFrame::FileDone { id }).await.is_err()
            {
                return;
            }
        }
    });
    let _guard = AbortOnDrop(receiver);
    for tag in 1.. {
        let offer = ClientFrame::FileOffer {
            tag,
            to: to.clone(),
            name: "bench.bin".into(),
            size,
            sha256,
        };
        tx_send.send(&offer).await.map_err(|e| e.to_string())?;
        let id = loop {
            match tx_events.next().await {
                Ok(Some(ServerFrame::FileAnswer { id, accept: true })) => break id,
                Ok(Some(ServerFrame::Error(e))) => return Err(e.message),
                Ok(Some(_)) => {}
                _ => return Err("the file sender's connection ended".into()),
            }
        };
        let start = Instant::now();
        let (mut sent, mut acked) = (0u64, 0u64);
        loop {
            while sent < size && sent - acked < FILE_WINDOW {
                let n = (size - sent).min(FILE_CHUNK as u64) as usize;
                let frame = ClientFrame::FileChunk {
                    id,
                    data: chunk[..n].to_vec(),
                };
                tx_send.send(&frame).await.map_err(|e| e.to_string())?;
                sent += n as u64;
            }
            match tx_events.next().await {
                Ok(Some(ServerFrame::FileAck { received, .. })) => acked = received,
                Ok(Some(ServerFrame::FileDone { .. })) => break,
                Ok(Some(ServerFrame::FileCancelled { reason, .. })) => return Err(reason),
                Ok(Some(_)) => {}
                _ => return Err("the file sender's connection ended".into()),
            }
        }
        if let Ok(mut done) = completed.lock() {
            done.push((size, start.elapsed()));
        }
    }
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
