//! Accounts: the server's confirmation of `/register` and of `/password`. Only then is the
//! new password used for reconnecting.

use crate::sanitize::sanitize_line;
use crate::tui::app::{App, Effect};

impl App {
    /// The nickname `nick` is now an account.
    pub(super) fn registered(&mut self, nick: &str) -> Vec<Effect> {
        self.adopt_new_password();
        self.account = true;
        // The account is this nickname (perhaps with the number the server added).
        nick.clone_into(&mut self.requested_nick);
        let nick = sanitize_line(nick);
        self.notice_active(
            &format!(
                "{nick} is registered: next time, log in with your password \
                 (the Password field, or --password)"
            ),
            false,
        );
        Vec::new()
    }

    /// The account's password was changed.
    pub(super) fn password_changed(&mut self) -> Vec<Effect> {
        self.adopt_new_password();
        self.notice_active("your password was changed", false);
        Vec::new()
    }

    /// Reconnecting logs in with the password just confirmed from now on.
    fn adopt_new_password(&mut self) {
        if let Some(password) = self.new_password.take() {
            self.password = Some(password);
        }
    }
}
