//! The hub's fan-out path without sockets: one member of a 1,000-member lobby sends a burst
//! of 64-byte messages, handled as one batch; the time covers checking, encoding, queueing for
//! every member and emptying the queues (which the sessions do in the server). Reported
//! per delivery. Run with `cargo bench -p chat-server`.

use chat_server::bench::FanOut;
use divan::counter::ItemsCount;

fn main() {
    divan::main();
}

const MEMBERS: usize = 1000;

#[divan::bench(args = [1, 8, 64])]
fn fan_out_to_1000(bencher: divan::Bencher, burst: usize) {
    let mut fixture = FanOut::new(MEMBERS, 64);
    bencher
        .counter(ItemsCount::new(burst * (MEMBERS - 1)))
        .bench_local(|| fixture.publish(burst));
}
