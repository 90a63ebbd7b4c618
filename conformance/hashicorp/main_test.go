package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// ---- the ports ----

func TestMixMatchesSplitMix64(t *testing.T) {
	// SplitMix64 seeded with 0 yields finalise(k * golden) for k = 1, 2, ...,
	// and mix(x) is finalise(x + golden).
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	for k, w := range want {
		if got := mix(uint64(k) * 0x9e3779b97f4a7c15); got != w {
			t.Errorf("mix(%d*golden) = %#x, want %#x", k, got, w)
		}
	}
}

func TestDigestIsFNV1a(t *testing.T) {
	d := NewDigest()
	if d.Len != 0 || d.Hash != fnv.New64a().Sum64() {
		t.Fatalf("empty digest %+v", d)
	}
	data := make([]byte, 100003)
	NewPattern(5).Fill(data)
	h := fnv.New64a()
	h.Write(data)
	d.Update(data[:17])
	d.Update(data[17:])
	if d.Len != uint64(len(data)) || d.Hash != h.Sum64() {
		t.Fatalf("digest %+v, want len %d hash %#x", d, len(data), h.Sum64())
	}
	wire := d.Bytes()
	if binary.BigEndian.Uint64(wire[:8]) != d.Len || binary.BigEndian.Uint64(wire[8:]) != d.Hash {
		t.Fatalf("wire form %x", wire)
	}
	if back, ok := DigestFromBytes(wire[:]); !ok || back != d {
		t.Fatalf("round trip %+v", back)
	}
	// FNV-1a 64 of "a".
	a := NewDigest()
	a.Update([]byte("a"))
	if a.Hash != 0xaf63dc4c8601ec8c {
		t.Fatalf("fnv1a(a) = %#x", a.Hash)
	}
}

func TestPatternIsPositional(t *testing.T) {
	p := NewPattern(42)
	var whole []byte
	rng := NewRng(1)
	for len(whole) < 5000 {
		chunk := make([]byte, rng.Range(0, 37))
		p.Fill(chunk)
		whole = append(whole, chunk...)
	}
	ref := NewPattern(42)
	for i, b := range whole {
		pos := uint64(i)
		// byte_at: mix(seed ^ mix(pos / 8)) >> (8 * (pos % 8)), as u8
		if want := byte(mix(42^mix(pos/8)) >> (8 * (pos % 8))); b != want || ref.ByteAt(pos) != want {
			t.Fatalf("byte %d: %#x, want %#x", i, b, want)
		}
	}
	if p.Position() != uint64(len(whole)) {
		t.Fatalf("position %d", p.Position())
	}
	c := NewPattern(42)
	if _, ok := c.Check(whole[:1001]); !ok {
		t.Fatal("check of the right bytes failed")
	}
	bad := append([]byte(nil), whole[1001:2000]...)
	bad[123] ^= 1
	if at, ok := c.Check(bad); ok || at != 1001+123 {
		t.Fatalf("check found %d %v", at, ok)
	}
	if c.Position() != 2000 {
		t.Fatalf("position after check %d", c.Position())
	}
	if bytes.Equal(take(NewPattern(1), 64), take(NewPattern(2), 64)) {
		t.Fatal("seeds 1 and 2 give the same bytes")
	}
}

func TestRng(t *testing.T) {
	a, b := NewRng(7), NewRng(7)
	for i := 0; i < 1000; i++ {
		if a.Next() != b.Next() {
			t.Fatal("not deterministic")
		}
		if v := a.Range(1, 1<<20); v < 1 || v > 1<<20 {
			t.Fatalf("range gave %d", v)
		}
		b.Range(1, 1<<20)
	}
	// Rng::new(0) is (0 ^ golden) | 1; the first output follows xorshift64*.
	x := uint64(0x9e3779b97f4a7c15 | 1)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	if got := NewRng(0).Next(); got != x*0x2545f4914f6cdd1d {
		t.Fatalf("first output %#x", got)
	}
}

func take(p *Pattern, n int) []byte {
	out := make([]byte, n)
	p.Fill(out)
	return out
}

// ---- serve and dial against each other ----

// startServe runs runServe in the background and returns the address it
// announced and a channel with its exit code.
func startServe(t *testing.T) (string, <-chan int, *syncBuffer) {
	t.Helper()
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- runServe(pw, stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the announcement: %v", err)
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(line, "listening 127.0.0.1:") {
		t.Fatalf("announcement %q", line)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "listening ")), code, stderr
}

func exitCode(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit")
		return -1
	}
}

func TestDialAgainstServe(t *testing.T) {
	addr, code, serveErr := startServe(t)
	var stdout, stderr bytes.Buffer
	if c := runDial(addr, 50, 64*1024, &stdout, &stderr); c != 0 {
		t.Fatalf("dial exit %d, stderr:\n%s", c, stderr.String())
	}
	if stdout.String() != "ok 50\n" {
		t.Fatalf("dial stdout %q", stdout.String())
	}
	if c := exitCode(t, code); c != 0 {
		t.Fatalf("serve exit %d, stderr:\n%s", c, serveErr.String())
	}
}

func TestDialLargeStreams(t *testing.T) {
	addr, code, serveErr := startServe(t)
	var stdout, stderr bytes.Buffer
	// Larger than the 256 KiB default window, so flow control is exercised.
	if c := runDial(addr, 4, 3<<20+7, &stdout, &stderr); c != 0 || stdout.String() != "ok 4\n" {
		t.Fatalf("dial exit %d, stdout %q, stderr:\n%s", c, stdout.String(), stderr.String())
	}
	if c := exitCode(t, code); c != 0 {
		t.Fatalf("serve exit %d, stderr:\n%s", c, serveErr.String())
	}
}

// clientOf starts serveConn on a fresh listener and returns a yamux client
// connected to it.
func clientOf(t *testing.T) (*yamux.Session, <-chan int, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			code <- 99
			return
		}
		code <- serveConn(conn, stderr)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	session, err := yamux.Client(conn, config(stderr))
	if err != nil {
		t.Fatal(err)
	}
	return session, code, stderr
}

// exchange opens a stream, writes request in pieces while reading the reply
// concurrently, half-closes, and returns the reply.
func exchange(t *testing.T, session *yamux.Session, request []byte) []byte {
	t.Helper()
	stream, err := session.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	var localClosed syncFlag
	reply := make(chan []byte, 1)
	go func() {
		var out []byte
		buf := make([]byte, 32*1024)
		idle := time.Now()
		for {
			n, err := stream.Read(buf)
			out = append(out, buf[:n]...)
			if n > 0 {
				idle = time.Now()
			}
			if err == io.EOF && !localClosed.get() {
				break
			}
			if err == io.EOF {
				// Possibly the library's early EOF after a local close: stop
				// once the session has forgotten the stream and nothing more
				// comes.
				if session.NumStreams() == 0 && time.Since(idle) > 200*time.Millisecond {
					break
				}
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Errorf("read: %v", err)
				break
			}
		}
		reply <- out
	}()
	for rest := request; len(rest) > 0; {
		n := len(rest)
		if n > 100000 {
			n = 100000
		}
		if _, err := stream.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	localClosed.set()
	stream.Close()
	select {
	case out := <-reply:
		return out
	case <-time.After(30 * time.Second):
		t.Fatal("no reply")
		return nil
	}
}

func TestCommands(t *testing.T) {
	session, code, serveErr := clientOf(t)

	// S over 1 MiB + 3 bytes of Pattern(7), and over nothing.
	data := take(NewPattern(7), 1<<20+3)
	want := NewDigest()
	want.Update(data)
	got := exchange(t, session, append([]byte{cmdSum}, data...))
	if d, ok := DigestFromBytes(got); !ok || d != want {
		t.Errorf("S reply %x, want %+v", got, want)
	}
	empty := NewDigest()
	wire := empty.Bytes()
	if got := exchange(t, session, []byte{cmdSum}); !bytes.Equal(got, wire[:]) {
		t.Errorf("empty S reply %x", got)
	}

	// G for 3 MiB + 5 bytes of Pattern(9), and for nothing.
	for _, length := range []uint64{3<<20 + 5, 0} {
		request := make([]byte, 17)
		request[0] = cmdGenerate
		binary.BigEndian.PutUint64(request[1:9], length)
		binary.BigEndian.PutUint64(request[9:], 9)
		got := exchange(t, session, request)
		if uint64(len(got)) != length {
			t.Errorf("G for %d bytes gave %d", length, len(got))
		} else if at, ok := NewPattern(9).Check(got); !ok {
			t.Errorf("G: byte %d wrong", at)
		}
	}

	// E over a small payload, checked with a plain reader.
	if got := exchange(t, session, []byte("Ehello, hawser")); string(got) != "hello, hawser" {
		t.Errorf("E reply %q", got)
	}

	// An unknown command: the stream is just closed.
	if got := exchange(t, session, []byte("Zwhatever")); len(got) != 0 {
		t.Errorf("unknown command replied %q", got)
	}

	// The dial logic over the same session.
	if failures := echoMany(session, 50, 64*1024); len(failures) > 0 {
		t.Errorf("echo failures:\n%s", strings.Join(failures, "\n"))
	}

	session.Close()
	if c := exitCode(t, code); c != 0 {
		t.Fatalf("serve exit %d, stderr:\n%s", c, serveErr.String())
	}
}

func TestServeExitsCleanlyOnEOF(t *testing.T) {
	addr, code, serveErr := startServe(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if c := exitCode(t, code); c != 0 {
		t.Fatalf("serve exit %d, stderr:\n%s", c, serveErr.String())
	}
}

func TestServeFailsOnGarbage(t *testing.T) {
	addr, code, _ := startServe(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Version 7 is not yamux.
	conn.Write([]byte{7, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	if c := exitCode(t, code); c == 0 {
		t.Fatal("serve exited 0 on a bad frame")
	}
}

func TestServeFailsOnTruncatedFrame(t *testing.T) {
	addr, code, _ := startServe(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{0, 0, 0})
	conn.Close()
	if c := exitCode(t, code); c == 0 {
		t.Fatal("serve exited 0 on a truncated frame")
	}
}

// shortEchoServer accepts one connection and answers every E stream with only
// the first half of what followed the command byte.
func shortEchoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		session, _ := yamux.Server(conn, config(io.Discard))
		for {
			stream, err := session.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				all, _ := io.ReadAll(stream)
				if len(all) > 1 {
					stream.Write(all[1 : 1+(len(all)-1)/2])
				}
				stream.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDialReportsShortEcho(t *testing.T) {
	addr := shortEchoServer(t)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	c := runDial(addr, 3, 10000, &stdout, &stderr)
	if c != 1 || stdout.Len() != 0 {
		t.Fatalf("dial exit %d, stdout %q", c, stdout.String())
	}
	for i := 0; i < 3; i++ {
		line := "stream " + string(rune('0'+i)) + ": sent 10000 bytes, got 5000 bytes"
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("stderr lacks %q:\n%s", line, stderr.String())
		}
	}
	t.Logf("reported in %v:\n%s", time.Since(start), stderr.String())
}

// TestLocalCloseReadEOF records the behaviour of this yamux version that
// readEcho works around: Read after the stream's own Close returns io.EOF as
// soon as nothing is buffered, before the peer's FIN.
func TestLocalCloseReadEOF(t *testing.T) {
	session, code, _ := clientOf(t)
	stream, err := session.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	// G for 1 MiB, but Close before the reply can have arrived.
	request := make([]byte, 17)
	request[0] = cmdGenerate
	binary.BigEndian.PutUint64(request[1:9], 1<<20)
	stream.Write(request)
	stream.Close()
	n, err := stream.Read(make([]byte, 16))
	if err == io.EOF && n == 0 {
		t.Log("this yamux version reports EOF after a local close before the peer's FIN")
	} else {
		t.Logf("Read after local close: %d, %v", n, err)
	}
	session.Close()
	<-code
}

// ---- helpers ----

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type syncFlag struct {
	mu sync.Mutex
	on bool
}

func (f *syncFlag) set() { f.mu.Lock(); f.on = true; f.mu.Unlock() }

func (f *syncFlag) get() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.on }
