//! panicstorm: thousands of Rust panics unwinding through instrumented
//! frames, in short queries. Single file, std only: `rustc -O panicstorm.rs`.
//!
//! Every instrumented call writes one ground-truth JSON line when it ends
//! (the format of tests/integration/check_spans.py); a frame dropped while
//! the thread is panicking is "abnormal", ended when its guard was dropped.
//!
//! One thread; root panicstorm::handle_query. Query kinds (-k, cycled):
//!   N  parse_query, execute_query -> scan_table -> read_block x3
//!      -> decode_block, send_result
//!   P  decode_block of the 2nd block panics; handle_query catches it with
//!      catch_unwind (4 frames unwound), then report_error
//!   Q  scan_table catches (catch_unwind in a middle frame) a panic from
//!      read_block -> decode_block, calls recover_block and goes on
//!   E  the panic escapes handle_query itself: the driver catches it, so
//!      the root never returns (its truth record is abnormal)
//! Every 16th query is followed by housekeeping(), outside any query.
//!
//! Usage: panicstorm [-n QUERIES] [-k KINDS] [--truth FILE] [--pid-file FILE]
//!                   [--wait-signal] [--hold FILE]    (as tests/stress/jmpstorm)
//! Default: 4000 queries of NPQE (1,000 of each kind).
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[repr(C)]
struct RUsage {
    fields: [i64; 18], // 2 timevals then 14 longs; ru_nivcsw is the last
}

extern "C" {
    fn gettid() -> i32;
    fn getpid() -> i32;
    fn getrusage(who: i32, usage: *mut RUsage) -> i32;
    fn sigwait(set: *const SigSet, sig: *mut i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
}

#[repr(C)]
struct SigSet {
    bits: [u64; 16],
}

const RUSAGE_THREAD: i32 = 1;
const SIG_BLOCK: i32 = 0;
const SIGUSR1: u64 = 10;
const SIGTERM: u64 = 15;

fn rusage() -> RUsage {
    let mut ru = RUsage { fields: [0; 18] };
    unsafe { getrusage(RUSAGE_THREAD, &mut ru) };
    ru
}

/// Times the thread was switched out other than by its own naps:
/// preempted (ru_nivcsw, the last field) or blocked (ru_nvcsw, the one
/// before) — see tests/stress/truth.h.
fn preemptions() -> i64 {
    let ru = rusage();
    ru.fields[17] + ru.fields[16] - NAP_SWITCHES.with(|n| n.get())
}

fn now_ns() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    d.as_secs() * 1_000_000_000 + d.subsec_nanos() as u64
}

struct Open {
    id: u64,
    begin: u64,
    iv: i64,
    name: &'static str,
}

static TRUTH: Mutex<Option<BufWriter<File>>> = Mutex::new(None);

thread_local! {
    static STACK: RefCell<Vec<Open>> = RefCell::new(Vec::new());
    static QUERY: Cell<i64> = Cell::new(-1);
    static NEXT_ID: Cell<u64> = Cell::new(0);
    static NAP_SWITCHES: Cell<i64> = Cell::new(0);
}

/// Records one instrumented call from its creation to its drop.
struct Frame;

impl Frame {
    #[inline(always)]
    fn enter(name: &'static str) -> Frame {
        let begin = now_ns();
        let iv = preemptions();
        let id = NEXT_ID.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        STACK.with(|s| s.borrow_mut().push(Open { id, begin, iv, name }));
        Frame
    }
}

const TRUTH_BUF: usize = 1 << 20;

impl Drop for Frame {
    fn drop(&mut self) {
        // writing out must happen inside the call, before its end is
        // timestamped: a write that waits would otherwise look like time
        // the tracer invented
        if let Some(w) = TRUTH.lock().unwrap().as_mut() {
            if w.buffer().len() > TRUTH_BUF / 2 {
                w.flush().unwrap();
            }
        }
        let end = now_ns();
        let iv = preemptions();
        let abnormal = std::thread::panicking();
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let f = s.pop().expect("frame stack underflow");
            let q = QUERY.with(|q| q.get());
            let (parent, parent_id) = match s.last() {
                Some(p) => (format!("\"{}\"", p.name), p.id.to_string()),
                None => ("null".to_string(), "null".to_string()),
            };
            let line = format!(
                "{{\"query\":{},\"name\":\"{}\",\"parent\":{},\"depth\":{},\"begin_ns\":{},\
                 \"end_ns\":{},\"tid\":{},\"pid\":{},\"id\":{},\"parent_id\":{},\
                 \"abnormal\":{},\"iv_begin\":{},\"iv_end\":{}}}\n",
                if q >= 0 { q.to_string() } else { "null".to_string() },
                f.name, parent, s.len(), f.begin, end,
                unsafe { gettid() }, unsafe { getpid() }, f.id, parent_id,
                abnormal, f.iv, iv
            );
            if let Some(w) = TRUTH.lock().unwrap().as_mut() {
                w.write_all(line.as_bytes()).unwrap();
            }
        });
    }
}

/// A record of no instrumented call: the thread's preemption count at its
/// start, so that check_spans.py notices a preemption before the first
/// real timestamp.
fn mark() {
    let f = Frame::enter("(thread start)");
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        let o = s.last_mut().unwrap();
        o.iv = preemptions();
    });
    drop(f);
}

fn nap_us(us: u64) {
    let a = rusage().fields[16];
    std::thread::sleep(Duration::from_micros(us));
    let b = rusage().fields[16];
    NAP_SWITCHES.with(|n| n.set(n.get() + b - a));
}

#[inline(never)]
pub fn decode_block(i: u32, fail: bool) -> u32 {
    let _f = Frame::enter("panicstorm::decode_block");
    nap_us(30 + i as u64);
    if fail {
        panic!("corrupt block {}", i);
    }
    i * 3
}

#[inline(never)]
pub fn read_block(i: u32, fail: bool) -> u32 {
    let _f = Frame::enter("panicstorm::read_block");
    nap_us(40);
    decode_block(i, fail) + 1
}

#[inline(never)]
pub fn recover_block(i: u32) -> u32 {
    let _f = Frame::enter("panicstorm::recover_block");
    nap_us(40);
    i
}

#[inline(never)]
pub fn scan_table(kind: u8) -> u32 {
    let _f = Frame::enter("panicstorm::scan_table");
    nap_us(50);
    let mut sum = 0;
    for i in 0..3 {
        let fail = i == 1 && kind != b'N';
        if kind == b'Q' {
            match panic::catch_unwind(AssertUnwindSafe(|| read_block(i, fail))) {
                Ok(v) => sum += v,
                Err(_) => sum += recover_block(i),
            }
        } else {
            sum += read_block(i, fail);
        }
    }
    sum
}

#[inline(never)]
pub fn execute_query(kind: u8) -> u32 {
    let _f = Frame::enter("panicstorm::execute_query");
    nap_us(50);
    scan_table(kind)
}

#[inline(never)]
pub fn parse_query() {
    let _f = Frame::enter("panicstorm::parse_query");
    nap_us(80);
}

#[inline(never)]
pub fn send_result() {
    let _f = Frame::enter("panicstorm::send_result");
    nap_us(50);
}

#[inline(never)]
pub fn report_error() {
    let _f = Frame::enter("panicstorm::report_error");
    nap_us(60);
}

#[inline(never)]
pub fn housekeeping() {
    let _f = Frame::enter("panicstorm::housekeeping");
    nap_us(40);
}

#[inline(never)]
pub fn handle_query(kind: u8) -> u32 {
    let _f = Frame::enter("panicstorm::handle_query");
    parse_query();
    let r = if kind == b'E' {
        execute_query(b'P') // nothing catches it here
    } else {
        match panic::catch_unwind(|| execute_query(kind)) {
            Ok(v) => v,
            Err(_) => {
                report_error();
                0
            }
        }
    };
    send_result();
    r
}

fn wait_usr1() {
    let set = SigSet { bits: {
        let mut b = [0u64; 16];
        b[0] = (1 << (SIGUSR1 - 1)) | (1 << (SIGTERM - 1));
        b
    } };
    let mut sig = 0;
    unsafe { sigwait(&set, &mut sig) };
}

fn usage() -> ! {
    eprintln!("usage: panicstorm [-n QUERIES] [-k NPQE...] [--truth FILE] [--pid-file FILE] \
               [--wait-signal] [--hold FILE]");
    std::process::exit(2)
}

fn main() {
    let mut n: u64 = 4000;
    let mut kinds = String::from("NPQE");
    let (mut truth, mut pid_file, mut hold) = (None, None, None);
    let mut wait_signal = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--wait-signal" {
            wait_signal = true;
            continue;
        }
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "-n" => n = v.parse().unwrap_or_else(|_| usage()),
            "-k" => kinds = v,
            "--truth" => truth = Some(v),
            "--pid-file" => pid_file = Some(v),
            "--hold" => hold = Some(v),
            _ => usage(),
        }
    }
    if kinds.is_empty() || !kinds.bytes().all(|k| b"NPQE".contains(&k)) {
        usage();
    }
    let block = SigSet { bits: {
        let mut b = [0u64; 16];
        b[0] = (1 << (SIGUSR1 - 1)) | (1 << (SIGTERM - 1));
        b
    } };
    unsafe { sigprocmask(SIG_BLOCK, &block, std::ptr::null_mut()) };
    // a thousand panic messages on stderr would say nothing
    panic::set_hook(Box::new(|_| {}));
    if let Some(p) = &truth {
        let f = File::create(p).unwrap_or_else(|e| {
            eprintln!("{}: {}", p, e);
            std::process::exit(2)
        });
        *TRUTH.lock().unwrap() = Some(BufWriter::with_capacity(TRUTH_BUF, f));
    }
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).expect("pid file");
    }
    if wait_signal {
        wait_usr1();
    }
    mark();
    let kinds = kinds.into_bytes();
    let mut sum: u64 = 0;
    let mut escaped = 0;
    for q in 0..n {
        let kind = kinds[(q % kinds.len() as u64) as usize];
        QUERY.with(|c| c.set(q as i64));
        match panic::catch_unwind(|| handle_query(kind)) {
            Ok(v) => sum += v as u64,
            Err(_) => escaped += 1,
        }
        QUERY.with(|c| c.set(-1));
        if q % 16 == 15 {
            housekeeping();
        }
    }
    mark();
    if let Some(w) = TRUTH.lock().unwrap().as_mut() {
        w.flush().expect("truth file");
    }
    *TRUTH.lock().unwrap() = None;
    println!("panicstorm: served {} queries ({} panics escaped the root, checksum {})", n, escaped, sum);
    std::io::stdout().flush().unwrap();
    if let Some(p) = hold {
        std::fs::write(&p, format!("done {}\n", n)).expect("hold file");
        wait_usr1();
    }
}
