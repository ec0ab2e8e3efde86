#![no_std]
#![no_main]
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

struct Yield(bool);
impl Future for Yield {
    type Output = ();
    fn poll(mut self: core::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 { Poll::Ready(()) } else { self.0 = true; Poll::Pending }
    }
}

#[inline(never)]
async fn leaf(x: u32) -> u32 { Yield(false).await; x * 3 }

#[inline(never)]
async fn handler(x: u32) -> u32 {
    let a = leaf(x).await;
    let b = async { Yield(false).await; a + 1 }.await;
    a + b
}

#[no_mangle]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    let mut f = pin!(handler(core::hint::black_box(argc as u32)));
    let mut g: core::pin::Pin<&mut dyn Future<Output = u32>> = core::hint::black_box(f.as_mut());
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = g.as_mut().poll(&mut cx) { return v as i32; }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }

#[no_mangle]
extern "C" fn rust_eh_personality() {}
