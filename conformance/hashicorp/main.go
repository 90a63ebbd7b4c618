// Command hashicorp-peer is a github.com/hashicorp/yamux peer for hawser's
// interop tests.
//
//	hashicorp-peer serve
//	hashicorp-peer dial ADDR STREAMS BYTES
//
// See README.md for the contract.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// safetyLimit is how long the process may run before it gives up by itself.
const safetyLimit = 120 * time.Second

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitTimeout = 3
)

// Stream command bytes (the first byte the opener writes).
const (
	cmdEcho     = 'E'
	cmdSum      = 'S'
	cmdGenerate = 'G'
)

func main() {
	time.AfterFunc(safetyLimit, func() {
		fmt.Fprintf(os.Stderr, "hashicorp-peer: gave up after %v\n", safetyLimit)
		os.Exit(exitTimeout)
	})
	os.Exit(run(os.Args[1:]))
}

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: hashicorp-peer serve")
	fmt.Fprintln(os.Stderr, "       hashicorp-peer dial ADDR STREAMS BYTES")
	return exitUsage
}

func run(args []string) int {
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "serve":
		if len(args) != 1 {
			return usage()
		}
		return runServe(os.Stdout, os.Stderr)
	case "dial":
		if len(args) != 4 {
			return usage()
		}
		streams, err := strconv.Atoi(args[2])
		if err != nil || streams < 0 {
			fmt.Fprintf(os.Stderr, "hashicorp-peer: bad STREAMS %q\n", args[2])
			return exitUsage
		}
		size, err := strconv.ParseUint(args[3], 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hashicorp-peer: bad BYTES %q\n", args[3])
			return exitUsage
		}
		return runDial(args[1], streams, size, os.Stdout, os.Stderr)
	default:
		return usage()
	}
}

func config(logw io.Writer) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = logw
	return cfg
}

// ---- serve ----

// runServe listens on a loopback port, announces it on stdout, and serves the
// one connection that arrives.
func runServe(stdout, stderr io.Writer) int {
	logger := log.New(stderr, "hashicorp-peer: ", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logger.Printf("listen: %v", err)
		return exitFailed
	}
	if _, err := fmt.Fprintf(stdout, "listening %s\n", ln.Addr()); err != nil {
		logger.Printf("announce: %v", err)
		return exitFailed
	}
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync() // os.File writes are unbuffered; Sync fails harmlessly on pipes
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		logger.Printf("accept: %v", err)
		return exitFailed
	}
	return serveConn(conn, stderr)
}

// serveConn runs a yamux server over conn and serves every inbound stream until
// the session ends. It returns 0 if the peer ended it (TCP EOF, or the
// connection closed or reset by the peer), 1 on any other error.
func serveConn(conn net.Conn, stderr io.Writer) int {
	logger := log.New(stderr, "hashicorp-peer: ", 0)
	session, err := yamux.Server(conn, config(stderr))
	if err != nil {
		logger.Printf("yamux server: %v", err)
		conn.Close()
		return exitFailed
	}
	var handlers sync.WaitGroup
	var serial uint64
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			err = sessionError(session, err)
			session.Close()
			waitTimeout(&handlers, 5*time.Second)
			if peerEnded(err) {
				return exitOK
			}
			logger.Printf("session ended: %v", err)
			return exitFailed
		}
		serial++
		handlers.Add(1)
		go func(stream *yamux.Stream, serial uint64) {
			defer handlers.Done()
			if err := serveStream(stream, serial); err != nil {
				logger.Printf("stream %d: %v", stream.StreamID(), err)
			}
		}(stream, serial)
	}
}

// sessionError finds why the session ended. AcceptStream reports the session's
// own error once it is shut down, but a stream still queued for accept can
// first fail with ErrSessionShutdown.
func sessionError(session *yamux.Session, err error) error {
	for i := 0; i < 10000 && err == yamux.ErrSessionShutdown && session.IsClosed(); i++ {
		var stream *yamux.Stream
		stream, err = session.AcceptStream()
		if err == nil {
			stream.Close()
			err = yamux.ErrSessionShutdown
		}
	}
	return err
}

// peerEnded reports whether err means that the peer closed the connection.
func peerEnded(err error) bool {
	return err == io.EOF ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

func waitTimeout(wg *sync.WaitGroup, limit time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(limit):
	}
}

// serveStream serves one inbound stream according to its command byte.
func serveStream(stream *yamux.Stream, serial uint64) error {
	var command [1]byte
	if _, err := io.ReadFull(stream, command[:]); err != nil {
		stream.Close()
		if err == io.EOF {
			return nil
		}
		return fmt.Errorf("read the command: %w", err)
	}
	switch command[0] {
	case cmdEcho:
		_, err := io.Copy(stream, stream)
		stream.Close()
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		return nil
	case cmdSum:
		digest := NewDigest()
		buf := make([]byte, 64*1024)
		for {
			n, err := stream.Read(buf)
			digest.Update(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				stream.Close()
				return fmt.Errorf("sum: %w", err)
			}
		}
		wire := digest.Bytes()
		_, err := stream.Write(wire[:])
		stream.Close()
		if err != nil {
			return fmt.Errorf("sum reply: %w", err)
		}
		return nil
	case cmdGenerate:
		var args [16]byte
		if _, err := io.ReadFull(stream, args[:]); err != nil {
			stream.Close()
			return fmt.Errorf("generate arguments: %w", err)
		}
		length := binary.BigEndian.Uint64(args[:8])
		pattern := NewPattern(binary.BigEndian.Uint64(args[8:]))
		rng := NewRng(serial)
		buf := make([]byte, 1<<20)
		for pattern.Position() < length {
			piece := rng.Range(1, 1<<20)
			if rest := length - pattern.Position(); piece > rest {
				piece = rest
			}
			chunk := buf[:piece]
			pattern.Fill(chunk)
			if _, err := stream.Write(chunk); err != nil {
				stream.Close()
				return fmt.Errorf("generate: %w", err)
			}
		}
		stream.Close()
		return nil
	default:
		stream.Close()
		return nil
	}
}

// ---- dial ----

// runDial connects to addr, echoes streams streams of size bytes each, prints
// "ok STREAMS" on success and closes the session.
func runDial(addr string, streams int, size uint64, stdout, stderr io.Writer) int {
	logger := log.New(stderr, "hashicorp-peer: ", 0)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		logger.Printf("dial %s: %v", addr, err)
		return exitFailed
	}
	session, err := yamux.Client(conn, config(stderr))
	if err != nil {
		conn.Close()
		logger.Printf("yamux client: %v", err)
		return exitFailed
	}
	failures := echoMany(session, streams, size)
	session.Close()
	if len(failures) > 0 {
		for _, failure := range failures {
			fmt.Fprintln(stderr, failure)
		}
		return exitFailed
	}
	fmt.Fprintf(stdout, "ok %d\n", streams)
	return exitOK
}

// How long a stream's echo may make no progress before it counts as short, and
// how long all echoes together may take to end with the peer's FIN.
const (
	echoStallLimit = 20 * time.Second
	finLimit       = 30 * time.Second
)

// echoMany opens streams `E` streams at once over session, each sending size
// bytes of Pattern(index), and returns one line per failure.
func echoMany(session *yamux.Session, streams int, size uint64) []string {
	opened := make([]*yamux.Stream, streams)
	failures := make([]string, streams)
	var wg sync.WaitGroup
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stream, err := echoStream(session, uint64(i), size)
			opened[i] = stream
			if err != nil {
				failures[i] = fmt.Sprintf("stream %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()

	var out []string
	for _, failure := range failures {
		if failure != "" {
			out = append(out, failure)
		}
	}
	if len(out) > 0 {
		return out
	}

	// Every echo is complete. The session forgets a stream once both sides have
	// sent FIN (or it was reset), so wait for that, then make sure nothing came
	// after the echo.
	deadline := time.Now().Add(finLimit)
	for session.NumStreams() > 0 && time.Now().Before(deadline) && !session.IsClosed() {
		time.Sleep(5 * time.Millisecond)
	}
	if left := session.NumStreams(); left > 0 {
		return []string{fmt.Sprintf("%d of %d streams did not end with a FIN from the peer within %v", left, streams, finLimit)}
	}
	settle(session)
	var one [1]byte
	for i, stream := range opened {
		n, err := stream.Read(one[:])
		switch {
		case n > 0:
			out = append(out, fmt.Sprintf("stream %d: sent %d bytes, got more than %d bytes", i, size, size))
		case err == yamux.ErrConnectionReset:
			out = append(out, fmt.Sprintf("stream %d: reset after the echo", i))
		case err != io.EOF:
			out = append(out, fmt.Sprintf("stream %d: after the echo: %v", i, err))
		}
	}
	return out
}

// settle waits until the session has taken in every frame the peer sent before
// now, by a ping round trip (frames are handled in order). It falls back to a
// short sleep if the ping fails, and reports whether the ping succeeded.
func settle(session *yamux.Session) bool {
	if _, err := session.Ping(); err != nil {
		time.Sleep(50 * time.Millisecond)
		return false
	}
	return true
}

// echoStream opens one `E` stream, writes size bytes of Pattern(seed) while a
// reader checks the echo, half-closes, and returns once the whole echo is in.
func echoStream(session *yamux.Session, seed, size uint64) (*yamux.Stream, error) {
	stream, err := session.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	var localClosed atomic.Bool
	echoed := make(chan error, 1)
	go func() { echoed <- readEcho(stream, seed, size, &localClosed) }()

	werr := writeEcho(stream, seed, size)
	localClosed.Store(true)
	stream.Close() // half-close: sends FIN
	rerr := <-echoed
	if rerr != nil {
		return stream, rerr
	}
	if werr != nil {
		return stream, fmt.Errorf("write: %w", werr)
	}
	return stream, nil
}

func writeEcho(stream *yamux.Stream, seed, size uint64) error {
	if _, err := stream.Write([]byte{cmdEcho}); err != nil {
		return err
	}
	pattern := NewPattern(seed)
	rng := NewRng(seed)
	buf := make([]byte, 64*1024)
	for pattern.Position() < size {
		piece := rng.Range(1, uint64(len(buf)))
		if rest := size - pattern.Position(); piece > rest {
			piece = rest
		}
		chunk := buf[:piece]
		pattern.Fill(chunk)
		if _, err := stream.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// readEcho reads until size bytes have come back and checks them against
// Pattern(seed).
//
// This yamux version returns io.EOF from Read on a stream it has closed itself
// whenever nothing is buffered, even though the peer has not sent FIN yet. So an
// EOF after our own Close, before all the bytes are in, is retried until it is
// known to be real (see below) or the echo makes no progress for
// echoStallLimit. An EOF before our Close is the peer's FIN.
func readEcho(stream *yamux.Stream, seed, size uint64, localClosed *atomic.Bool) error {
	pattern := NewPattern(seed)
	buf := make([]byte, 64*1024)
	var lastProgress time.Time // zero until the first EOF after our Close
	wait := 100 * time.Microsecond
	wrongAt := int64(-1)
	final := false
	for {
		n, err := stream.Read(buf)
		if n > 0 {
			if uint64(n) > size-pattern.Position() {
				return fmt.Errorf("sent %d bytes, got more than %d bytes", size, size)
			}
			if wrongAt < 0 {
				if at, ok := pattern.Check(buf[:n]); !ok {
					wrongAt = int64(at)
				}
			} else {
				pattern.Skip(uint64(n))
			}
			if !lastProgress.IsZero() {
				lastProgress = time.Now()
			}
			wait = 100 * time.Microsecond
		}
		got := pattern.Position()
		if got == size && (err == nil || err == io.EOF) {
			if wrongAt >= 0 {
				return fmt.Errorf("sent %d bytes, got %d bytes, byte %d of the echo is wrong", size, got, wrongAt)
			}
			return nil
		}
		switch {
		case err == nil:
		case err == io.EOF && localClosed.Load():
			session := stream.Session()
			if session.IsClosed() {
				return fmt.Errorf("sent %d bytes, got %d bytes (the session ended)", size, got)
			}
			if final {
				return fmt.Errorf("sent %d bytes, got %d bytes (FIN from the peer)", size, got)
			}
			// With no stream left in the session, this one has had the peer's
			// FIN (or a reset). A ping round trip makes sure the frame that
			// carried it has been taken in; then the next EOF is real.
			if session.NumStreams() == 0 && settle(session) {
				final = true
				continue
			}
			if lastProgress.IsZero() {
				lastProgress = time.Now()
			} else if time.Since(lastProgress) > echoStallLimit {
				return fmt.Errorf("sent %d bytes, got %d bytes (no progress for %v)", size, got, echoStallLimit)
			}
			time.Sleep(wait)
			if wait < 5*time.Millisecond {
				wait *= 2
			}
		case err == io.EOF:
			return fmt.Errorf("sent %d bytes, got %d bytes (FIN from the peer)", size, got)
		default:
			return fmt.Errorf("sent %d bytes, got %d bytes: %w", size, got, err)
		}
	}
}

// ---- Digest, Pattern, Rng: ports of conformance/src/interop/link.rs and rng.rs ----

// Digest is a running FNV-1a 64 checksum with the byte count.
type Digest struct {
	Len  uint64
	Hash uint64
}

// NewDigest is the digest of nothing.
func NewDigest() Digest {
	return Digest{Len: 0, Hash: 0xcbf29ce484222325}
}

// Update feeds data.
func (d *Digest) Update(data []byte) {
	h := d.Hash
	for _, b := range data {
		h = (h ^ uint64(b)) * 0x100000001b3
	}
	d.Hash = h
	d.Len += uint64(len(data))
}

// Bytes is the 16-byte wire form: length then hash, big-endian.
func (d Digest) Bytes() [16]byte {
	var out [16]byte
	binary.BigEndian.PutUint64(out[:8], d.Len)
	binary.BigEndian.PutUint64(out[8:], d.Hash)
	return out
}

// DigestFromBytes parses the 16-byte wire form.
func DigestFromBytes(b []byte) (Digest, bool) {
	if len(b) != 16 {
		return Digest{}, false
	}
	return Digest{Len: binary.BigEndian.Uint64(b[:8]), Hash: binary.BigEndian.Uint64(b[8:])}, true
}

// mix is SplitMix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Pattern is a byte stream that depends only on a seed and the position.
type Pattern struct {
	seed     uint64
	position uint64
}

// NewPattern is the stream for seed, from its first byte.
func NewPattern(seed uint64) *Pattern {
	return &Pattern{seed: seed}
}

// Position is how many bytes have been produced, checked or skipped.
func (p *Pattern) Position() uint64 { return p.position }

func (p *Pattern) word(index uint64) uint64 {
	return mix(p.seed ^ mix(index))
}

// ByteAt is the byte at position.
func (p *Pattern) ByteAt(position uint64) byte {
	return byte(p.word(position/8) >> (8 * (position % 8)))
}

// Fill fills buf with the next bytes of the stream.
func (p *Pattern) Fill(buf []byte) {
	pos := p.position
	i := 0
	for i < len(buf) {
		w := p.word(pos / 8)
		for shift := pos % 8; shift < 8 && i < len(buf); shift++ {
			buf[i] = byte(w >> (8 * shift))
			i++
			pos++
		}
	}
	p.position = pos
}

// Check checks that data is the next part of the stream and advances past it.
// On a mismatch it returns the position of the first wrong byte and false.
func (p *Pattern) Check(data []byte) (uint64, bool) {
	pos := p.position
	bad, ok := uint64(0), true
	i := 0
	for i < len(data) && ok {
		w := p.word(pos / 8)
		for shift := pos % 8; shift < 8 && i < len(data); shift++ {
			if data[i] != byte(w>>(8*shift)) {
				bad, ok = pos, false
				break
			}
			i++
			pos++
		}
	}
	p.position += uint64(len(data))
	return bad, ok
}

// Skip advances by n bytes without checking them.
func (p *Pattern) Skip(n uint64) { p.position += n }

// Rng is xorshift64*, seeded as in rng.rs.
type Rng struct{ state uint64 }

// NewRng is a generator seeded with seed.
func NewRng(seed uint64) *Rng {
	return &Rng{state: (seed ^ 0x9e3779b97f4a7c15) | 1}
}

// Next is the next 64 random bits.
func (r *Rng) Next() uint64 {
	x := r.state
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.state = x
	return x * 0x2545f4914f6cdd1d
}

// Range is a value in low..=high.
func (r *Rng) Range(low, high uint64) uint64 {
	span := high - low
	if span == ^uint64(0) {
		return r.Next()
	}
	return low + r.Next()%(span+1)
}
