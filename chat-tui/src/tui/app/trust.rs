//! A server certificate this client does not trust yet: seen for the first time, the user is
//! shown its fingerprint and asked (as SSH asks about a new host key); changed since it was
//! accepted, the connection is refused with both fingerprints and the command that forgets
//! the old one. Nothing is ever accepted without the user saying so.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, ConnState, Effect, Screen};
use crate::trust::{self as policy, Verdict};

/// The certificate on screen, waiting for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPrompt {
    /// The server, `host:port`.
    pub server: String,
    /// The fingerprint of the certificate it presented.
    pub fingerprint: String,
    /// What that means: a first use (the user decides) or a refusal (the user is told).
    pub verdict: Verdict,
}

impl TrustPrompt {
    /// Whether the user is asked (a first use), rather than told.
    pub fn asks(&self) -> bool {
        self.verdict == Verdict::FirstUse
    }

    /// What the prompt says, one paragraph per item.
    pub fn text(&self) -> Vec<String> {
        let (server, new) = (&self.server, &self.fingerprint);
        match &self.verdict {
            Verdict::FirstUse => vec![
                format!("{server} presents a certificate this client has not seen before."),
                format!("Fingerprint: {new}"),
                "Compare it with what the server's operator sees (`chat-server fingerprint` \
                 prints it). Once trusted, it is kept in known_servers and not asked again."
                    .to_owned(),
            ],
            Verdict::Changed { old } => vec![
                format!("The certificate of {server} has CHANGED."),
                format!("Accepted before: {old}"),
                format!("Presented now:   {new}"),
                "Someone may be intercepting the connection, or the server has a new \
                 certificate: ask its operator. Not connecting. Only if the new one is right, \
                 forget the old one with:"
                    .to_owned(),
                policy::forget_command(server),
            ],
            Verdict::NotGiven { given } => vec![
                format!("The certificate of {server} is not the one given."),
                format!("Given (--trust-fingerprint): {given}"),
                format!("Presented now:   {new}"),
                "Not connecting.".to_owned(),
            ],
        }
    }

    /// The keys, as the prompt's bottom line shows them.
    pub fn keys(&self) -> &'static str {
        if self.asks() {
            " y trust it and connect · n don't "
        } else {
            " Enter close "
        }
    }
}

impl App {
    /// The server's certificate was not trusted.
    pub(super) fn untrusted(
        &mut self,
        server: String,
        fingerprint: String,
        verdict: Verdict,
    ) -> Vec<Effect> {
        if self.conn == ConnState::Quitting {
            return vec![Effect::Exit];
        }
        let prompt = TrustPrompt {
            server,
            fingerprint,
            verdict,
        };
        let reason = match &prompt.verdict {
            Verdict::FirstUse => "waiting for you to trust the server's certificate".to_owned(),
            Verdict::Changed { old } => policy::changed(&prompt.server, old, &prompt.fingerprint),
            Verdict::NotGiven { given } => {
                policy::not_given(&prompt.server, given, &prompt.fingerprint)
            }
        };
        self.not_connected(&reason, !prompt.asks());
        self.trust_prompt = Some(prompt);
        Vec::new()
    }

    /// Not connecting, because of `reason`: said on the connect form or in the lobby.
    fn not_connected(&mut self, reason: &str, loud: bool) {
        self.conn = ConnState::Stopped {
            reason: reason.to_owned(),
        };
        if let Screen::Connect(form) = &mut self.screen {
            form.connecting = false;
            form.error = Some(reason.to_owned());
        } else if loud {
            self.notice(0, reason, true);
        }
    }

    /// A key while the prompt is on screen: it has the keyboard.
    pub(super) fn trust_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(prompt) = self.trust_prompt.clone() else {
            return Vec::new();
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.trust_prompt = None;
            return self.quit(String::new());
        }
        match key.code {
            KeyCode::Char('y' | 'Y') if prompt.asks() => {
                self.trust_prompt = None;
                let text = format!(
                    "trusting {} from now on ({})",
                    prompt.server, prompt.fingerprint
                );
                self.conn = ConnState::Connecting;
                match &mut self.screen {
                    Screen::Connect(form) => {
                        form.connecting = true;
                        form.error = None;
                    }
                    Screen::Main => self.notice(0, &text, false),
                }
                vec![
                    Effect::Trust {
                        server: prompt.server,
                        fingerprint: prompt.fingerprint,
                    },
                    self.connect_effect(std::time::Duration::ZERO),
                ]
            }
            KeyCode::Char('n' | 'N') | KeyCode::Esc if prompt.asks() => {
                self.trust_prompt = None;
                let again = match self.screen {
                    Screen::Connect(_) => "Enter",
                    Screen::Main => "/reconnect",
                };
                let reason = format!(
                    "not connected: the certificate of {} was not trusted ({again} asks again)",
                    prompt.server
                );
                self.not_connected(&reason, true);
                Vec::new()
            }
            KeyCode::Enter | KeyCode::Esc | KeyCode::Char('q') if !prompt.asks() => {
                self.trust_prompt = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}
