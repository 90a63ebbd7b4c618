use hawser_tokio::{Config, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn echo_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let session = Session::server(tcp, Config::default()).unwrap();
        while let Some(mut stream) = session.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                stream.read_to_end(&mut buf).await.unwrap();
                stream.write_all(&buf).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let session = Session::client(tcp, Config::default()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let control = session.control();
        tasks.push(tokio::spawn(async move {
            let mut stream = control.open_stream().await.unwrap();
            let data = vec![i; 300_000];
            stream.write_all(&data).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, data);
        }));
    }
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap();
    }
    session.close(hawser_tokio::GoAwayCode::NORMAL);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
}
