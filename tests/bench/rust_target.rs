//! Rust benchmark target for `make bench`: an async fn polled out of line,
//! the commonest thing users trace in a tokio server, in timed loops.
//! Built twice (tests/bench/bench.mk): panic = "unwind" (the default:
//! spanprobe ends the polls at their ret sites) and panic = "abort"
//! (nothing can unwind: uretprobe exits).
//!
//! Commands, one per line on stdin, one answer line each (as target.c):
//!   armed FUNC [OFF]   wait until the byte at FUNC+OFF differs from its
//!                      pristine value (a breakpoint is in place)
//!   clear FUNC [OFF]   wait until it is pristine again
//!   run plain|root FUNC MS
//!                      poll a fresh future of leaf_async to completion in
//!                      a loop for MS ms, directly or from bench_root;
//!                      answers "CALLS NS"
//!   quit
//! FUNC: leaf (the poll function of leaf_async's future) or root.
use std::future::Future;
use std::hint::black_box;
use std::io::{BufRead, Write};
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

/// Ready at its first poll, like most polls of a busy server's futures
/// that find their data there.
async fn leaf_async(x: u64) -> u64 {
    black_box(x) * 3 + 1
}

fn noop_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// The poll function of F, as a pointer: calling through it keeps the
/// poll out of line (its own symbol, `leaf_async::{{closure}}`).
fn poll_fn_of<F: Future>(_: &F) -> fn(Pin<&mut F>, &mut Context<'_>) -> Poll<F::Output> {
    F::poll
}

fn leaf_poll_addr() -> usize {
    poll_fn_of(&leaf_async(0)) as usize
}

#[inline(never)]
fn timed_loop(deadline: Instant) -> (u64, u64) {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut acc, mut n) = (0u64, 0u64);
    loop {
        for i in 0..256u64 {
            let mut f = leaf_async(n + i);
            let poll = black_box(poll_fn_of(&f));
            // SAFETY: f is not moved until it is dropped at the end of the loop body
            if let Poll::Ready(v) = poll(unsafe { Pin::new_unchecked(&mut f) }, &mut cx) {
                acc = acc.wrapping_add(v);
            }
        }
        n += 256;
        if Instant::now() >= deadline {
            return (acc, n);
        }
    }
}

/// The query root; the black_box after the call keeps it from being a
/// tail call.
#[inline(never)]
pub fn bench_root(deadline: Instant) -> (u64, u64) {
    let r = timed_loop(deadline);
    black_box(r)
}

fn addr_of(name: &str) -> Option<usize> {
    match name {
        "leaf" => Some(leaf_poll_addr()),
        "root" => Some(bench_root as fn(Instant) -> (u64, u64) as usize),
        _ => None,
    }
}

fn byte_at(addr: usize) -> u8 {
    // SAFETY: addr is inside a function of this program (read-only code)
    unsafe { std::ptr::read_volatile(addr as *const u8) }
}

fn wait_state(addr: usize, pristine: u8, armed: bool) -> &'static str {
    for _ in 0..10000 {
        if (byte_at(addr) != pristine) == armed {
            return "ok";
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    "timeout"
}

fn main() {
    let pristine: Vec<(String, usize, [u8; 16])> = ["leaf", "root"]
        .iter()
        .map(|n| {
            let a = addr_of(n).unwrap();
            let mut b = [0u8; 16];
            for (k, x) in b.iter_mut().enumerate() {
                *x = byte_at(a + k);
            }
            (n.to_string(), a, b)
        })
        .collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        let ans = match w.as_slice() {
            ["quit"] => break,
            [cmd @ ("armed" | "clear"), name, rest @ ..] => {
                let off: usize = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
                match pristine.iter().find(|p| p.0 == *name) {
                    Some(p) if off < 16 => wait_state(p.1 + off, p.2[off], *cmd == "armed").to_string(),
                    _ => "error unknown function or offset".to_string(),
                }
            }
            ["run", mode, "leaf", ms] => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => {
                    let t0 = Instant::now();
                    let deadline = t0 + Duration::from_millis(ms);
                    let (acc, n) = if *mode == "root" { bench_root(deadline) } else { timed_loop(deadline) };
                    black_box(acc);
                    format!("{} {}", n, t0.elapsed().as_nanos())
                }
                _ => "error bad run".to_string(),
            },
            _ => "error unknown command".to_string(),
        };
        writeln!(out, "{}", ans).unwrap();
        out.flush().unwrap();
    }
}
