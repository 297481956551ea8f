//! A TCP server on a free loopback port, on its own thread and runtime (so
//! blocking and async tests alike can use it), that hands every accepted
//! connection to `handler`. It stops when the returned value is dropped.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};

pub struct Loopback {
    pub addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn serve<F, Fut>(handler: F) -> Loopback
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let accept = async {
                loop {
                    if let Ok((sock, _)) = listener.accept().await {
                        tokio::spawn(handler(sock));
                    }
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = rx => {}
            }
        });
    });
    Loopback {
        addr: addr_rx.recv().unwrap(),
        _shutdown: tx,
    }
}
