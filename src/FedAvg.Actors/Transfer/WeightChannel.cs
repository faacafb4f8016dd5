using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Akka.Event;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// The weight channel: a TCP port of the server's beside Akka.Remote's, over which nodes fetch the round's global
/// weights and upload their clients' updates, while every message (and the ticket that names a vector) still goes
/// through the actors. Akka.Remote moves a 6.65 MB vector as ~100 stream-ref chunks at 210–260 MB/s here, against
/// 3–4 GB/s for a plain socket on loopback (`fedavg bench wire`); the channel writes the vector's own bytes straight
/// from the array to the socket and reads them straight into the receiver's array, hashing each window as it lands.
/// </summary>
/// <remarks>
/// <para>Wire format (little-endian). A request is <c>"FAW" 1</c>, an operation byte and a 16-byte ticket:
/// <list type="bullet">
/// <item>fetch (1): the server answers a status byte, then the vector's byte length (int64) and its bytes; the
/// status is 4 instead of 0 when the ticket was offered to one node, which may then subscribe with it;</item>
/// <item>upload (2): the request goes on with the float count (int32) and XxHash3 (uint64), then the bytes; the
/// server answers a status byte once the vector is stored and checked;</item>
/// <item>subscribe (3), with the ticket of weights offered to this node: the server answers a status byte, and the
/// connection is from then on the node's subscription. For each later round in which the node has work, the server
/// writes the ticket, the byte length (int64) and the bytes on it, as soon as it offers them and while the round's
/// <see cref="TrainRound"/> (whose header holds the checksum the node checks them against) is on its way through
/// Akka; the node sends nothing more on it. A push saves the Akka hop and the request that a fetch waits for.</item>
/// </list>
/// A status other than 0 is followed by a reason (one length byte, UTF-8). One connection carries any number of
/// requests, one at a time; the node keeps its connections open between rounds (a TLS handshake costs 5–11 ms).</para>
/// <para>Who may use it: with TLS, the same mutual authentication against the federation's CA as the transport;
/// in plaintext (loopback, or <c>--insecure</c>) anyone who can connect. Either way a vector is reached only by its
/// ticket, 128 random bits the server (fetch) or the node (upload) drew and sent through Akka, and an upload is
/// used only when the client registered under that id names it in its <see cref="UpdateSubmitted"/>. Bad bytes
/// close the connection with a logged reason; nothing reaches aggregation without its checksum.</para>
/// </remarks>
public static class WeightChannel
{
    internal static ReadOnlySpan<byte> Magic => "FAW\u0001"u8;
    internal const byte Fetch = 1, Upload = 2, Subscribe = 3;
    internal const byte Ok = 0, Unknown = 1, Refused = 2, Damaged = 3;
    /// <summary>A fetch's answer when the weights were offered to the node: they follow, and the node may subscribe with that ticket.</summary>
    internal const byte OkSubscribe = 4;
    internal const int RequestBytes = 4 + 1 + 16;
    internal const int UploadHeaderBytes = 4 + 8;
    internal const int PushHeadBytes = 16 + 8;

    /// <summary>Bytes read (and hashed) per call: big enough that a call moves a lot, small enough to stay in L2 for the hash.</summary>
    internal const int Window = 256 * 1024;

    /// <summary>
    /// Under TLS: SslStream writes one 16 KB record per socket call and reads about as little; beneath it this moves
    /// up to 256 KiB per call. Writes are gathered only while <see cref="Gathering.Corked"/> (a vector's bytes), so
    /// the handshake and the small messages go out at once.
    /// </summary>
    internal static SslStream Secure(Stream socket) => new Secured(new Gathering(socket));

    sealed class Secured(Gathering gathering) : SslStream(gathering, leaveInnerStreamOpen: false)
    {
        public Gathering Gathering => gathering;
    }

    /// <summary>Reads ahead in 256 KiB, and gathers writes while corked; <see cref="Stream.FlushAsync(CancellationToken)"/> sends what it holds.</summary>
    internal sealed class Gathering(Stream inner) : Stream
    {
        // rented while in use and returned once drained, so an idle pooled connection holds no buffer of its own
        byte[]? readBuffer;
        int readStart, readEnd;
        byte[]? writeBuffer;
        int written;

        public bool Corked { get; set; }

        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() => FlushAsync().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancel = default)
        {
            if (readBuffer is null)
            {
                if (destination.Length >= Window) return await inner.ReadAsync(destination, cancel).ConfigureAwait(false);
                var buffer = ArrayPool<byte>.Shared.Rent(Window);
                int got;
                try
                {
                    got = await inner.ReadAsync(buffer.AsMemory(0, Window), cancel).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    throw;
                }
                if (got == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return 0;
                }
                (readBuffer, readStart, readEnd) = (buffer, 0, got);
            }
            int n = Math.Min(destination.Length, readEnd - readStart);
            readBuffer.AsMemory(readStart, n).CopyTo(destination);
            readStart += n;
            if (readStart == readEnd)
            {
                ArrayPool<byte>.Shared.Return(readBuffer);
                readBuffer = null;
            }
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancel) =>
            ReadAsync(buffer.AsMemory(offset, count), cancel).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancel = default)
        {
            if (!Corked)
            {
                await FlushBuffer(cancel).ConfigureAwait(false);
                await inner.WriteAsync(source, cancel).ConfigureAwait(false);
                return;
            }
            writeBuffer ??= ArrayPool<byte>.Shared.Rent(Window);
            while (source.Length > 0)
            {
                int n = Math.Min(source.Length, Window - written);
                source[..n].CopyTo(writeBuffer.AsMemory(written));
                written += n;
                source = source[n..];
                if (written == Window) await FlushBuffer(cancel).ConfigureAwait(false);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancel) =>
            WriteAsync(buffer.AsMemory(offset, count), cancel).AsTask();

        async ValueTask FlushBuffer(CancellationToken cancel)
        {
            if (writeBuffer is null) return;
            if (written > 0) await inner.WriteAsync(writeBuffer.AsMemory(0, written), cancel).ConfigureAwait(false);
            written = 0;
            if (Corked) return; // more of the vector follows
            ArrayPool<byte>.Shared.Return(writeBuffer);
            writeBuffer = null;
        }

        public override async Task FlushAsync(CancellationToken cancel)
        {
            await FlushBuffer(cancel).ConfigureAwait(false);
            await inner.FlushAsync(cancel).ConfigureAwait(false);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Writes a vector's bytes and flushes; under TLS its records are gathered into big socket writes. A peer that
    /// takes no window of it for <paramref name="idle"/> fails it: a slow link is fine, a vanished machine is not.
    /// </summary>
    const int IdleCheckBytes = 1 << 20;

    internal static async Task WriteVector(Stream stream, ReadOnlyMemory<byte> bytes, TimeSpan idle, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var gathering = (stream as Secured)?.Gathering;
        if (gathering is not null) gathering.Corked = true;
        try
        {
            // a MiB per call, each with its own idle limit: alternated with one call for the whole vector (which has
            // no idle limit), the broadcast read 0.79-0.83 of raw TCP against 0.73-0.81 (`fedavg bench wire`, 3 pairs)
            for (int at = 0; at < bytes.Length; at += IdleCheckBytes)
            {
                timeout.CancelAfter(idle);
                await stream.WriteAsync(bytes.Slice(at, Math.Min(IdleCheckBytes, bytes.Length - at)), timeout.Token).ConfigureAwait(false);
            }
        }
        finally
        {
            if (gathering is not null) gathering.Corked = false;
        }
        timeout.CancelAfter(idle);
        await stream.FlushAsync(timeout.Token).ConfigureAwait(false);
    }

    /// <summary>A strong random ticket: the vector's only name, never derived from the run's seed.</summary>
    public static Guid NewTicket() => new(RandomNumberGenerator.GetBytes(16));

    internal static Memory<byte> BytesOf(float[] weights) => new FloatBytes(weights).Memory;

    /// <summary>The bytes of a float array as <see cref="Memory{T}"/>, so a socket reads and writes the array itself.</summary>
    sealed class FloatBytes(float[] array) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
        }

        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }

    internal static async Task WriteStatus(Stream stream, byte status, string reason, CancellationToken cancel)
    {
        var text = Encoding.UTF8.GetBytes(reason.Length > 200 ? reason[..200] : reason);
        var message = new byte[2 + text.Length];
        message[0] = status;
        message[1] = (byte)text.Length;
        text.CopyTo(message, 2);
        await stream.WriteAsync(message, cancel).ConfigureAwait(false);
        await stream.FlushAsync(cancel).ConfigureAwait(false);
    }

    internal static async Task<string> ReadReason(Stream stream, CancellationToken cancel)
    {
        var length = new byte[1];
        await stream.ReadExactlyAsync(length, cancel).ConfigureAwait(false);
        var text = new byte[length[0]];
        await stream.ReadExactlyAsync(text, cancel).ConfigureAwait(false);
        return Encoding.UTF8.GetString(text);
    }

    /// <summary>Reads exactly <paramref name="target"/>.Length bytes in windows, hashing each as it lands; a connection that ends early is a <see cref="WeightTransferException"/>.</summary>
    internal static async Task ReadHashed(Stream stream, Memory<byte> target, XxHash3 hash, TimeSpan idle, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        int done = 0;
        while (done < target.Length)
        {
            timeout.CancelAfter(idle);
            int n = await stream.ReadAsync(target.Slice(done, Math.Min(Window, target.Length - done)), timeout.Token).ConfigureAwait(false);
            if (n == 0) throw new WeightTransferException($"the connection closed after {done} of {target.Length} bytes");
            hash.Append(target.Span.Slice(done, n));
            done += n;
        }
    }

    internal static void WriteRequest(Span<byte> request, byte operation, Guid ticket)
    {
        Magic.CopyTo(request);
        request[4] = operation;
        ticket.TryWriteBytes(request[5..]);
    }

    internal static SslClientAuthenticationOptions ClientOptions(TransportSecurity tls, string host, Action<string> refused) => new()
    {
        TargetHost = host,
        ClientCertificates = [tls.Certificate],
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => Accept(tls, certificate, host, refused),
    };

    internal static bool Accept(TransportSecurity tls, X509Certificate? certificate, string peer, Action<string> refused)
    {
        string? why = certificate is null ? "it presented no certificate"
            : tls.Check(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
        if (why is null) return true;
        refused($"weight channel: refused {peer}: {why}");
        return false;
    }
}

/// <summary>
/// The server's end of the <see cref="WeightChannel"/>: it listens, serves the vectors it offers, and stores
/// uploads until the server claims them. Its work runs on sockets' completions (short copies and hashes), never on
/// an actor's thread.
/// </summary>
public sealed class WeightChannelServer : IDisposable
{
    /// <summary>Connections at once: a node keeps one or two; more than this is someone else's doing.</summary>
    public const int MaxConnections = 1024;

    /// <summary>
    /// Connections from one IP address that have not made their first request: see <see cref="UnansweredConnections"/>.
    /// Past this, that address's new connections are closed at once (logged, summed), and other addresses are served.
    /// </summary>
    public const int MaxUnansweredPerAddress = 64;

    /// <summary>The TLS handshake and the first request must come this soon, so a silent stranger cannot hold a slot.</summary>
    public TimeSpan FirstRequest { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A transfer (a fetch or push written, an upload read) that moves none of a vector's bytes for this long fails: a slow link is fine, a vanished machine is not.</summary>
    public TimeSpan Idle { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A connection without a request for this long is closed, so idle nodes do not hold sockets and TLS state.</summary>
    public TimeSpan IdleLimit { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>An upload nobody claimed (its update was lost or refused) is dropped after this.</summary>
    static readonly TimeSpan UploadLifetime = TimeSpan.FromMinutes(5);

    readonly Socket listener;
    readonly TransportSecurity? tls;
    readonly ILoggingAdapter log;
    readonly CancellationTokenSource stopping = new();
    readonly ConcurrentDictionary<Guid, Offered> offers = new();
    readonly ConcurrentDictionary<string, Subscription> subscriptions = new();
    readonly ConcurrentDictionary<Guid, Stored> uploads = new();
    long uploadBytes;
    int connections;
    int uploadLength = -1;
    readonly UnansweredConnections unanswered;
    readonly PeerWarnings warnings;

    sealed record Stored(float[] Weights, ulong Checksum, DateTime At);
    sealed record Offered(float[] Weights, string? Node);

    /// <summary>A node's subscription: the connection the server pushes that node's vectors on, one at a time.</summary>
    sealed class Subscription(Stream stream, string peer, X509Certificate? certificate, CancellationTokenSource ended)
    {
        public Stream Stream => stream;
        public string Peer => peer;
        public X509Certificate? Certificate => certificate;
        public CancellationTokenSource Ended => ended;
        /// <summary>Pushes written or waiting to be: one connection writes one vector at a time.</summary>
        public int Pending;
        public readonly SemaphoreSlim Writing = new(1);
    }

    long fetchesServed, pushes;
    volatile Action<string, string>? revokedNode;

    /// <summary>
    /// Told (node, reason), on the channel's thread, when a node this channel offers weights to presents a certificate
    /// that revoked.txt now lists: at its next push, or at its next request under a ticket offered to it. The server
    /// removes that node from the federation; without this it stayed a member whose clients failed every round.
    /// Null: no one is told (the refusal is still logged).
    /// </summary>
    public void ReportRevokedNodes(Action<string, string>? report) => revokedNode = report;

    /// <summary>Fetch requests answered with a vector, and vectors pushed to subscribed nodes, since the start.</summary>
    public (long Fetches, long Pushes) Served => (Interlocked.Read(ref fetchesServed), Interlocked.Read(ref pushes));

    /// <summary>Whether <paramref name="node"/> holds a subscription now.</summary>
    public bool IsSubscribed(string node) => subscriptions.ContainsKey(node);

    /// <summary>Connections open now.</summary>
    public int Connections => Volatile.Read(ref connections);

    /// <summary>Connections from <paramref name="address"/> open now that have not made their first request.</summary>
    public int UnansweredFrom(IPAddress address) => unanswered.OpenFrom(address);

    /// <summary>The port it listens on (the one asked for, or the one the OS gave for 0).</summary>
    public int Port { get; }

    /// <summary>Bytes of uploads stored and not yet claimed, at most <see cref="MaxUploadBytes"/>.</summary>
    public long MaxUploadBytes { get; init; } = 1L << 30;

    WeightChannelServer(Socket listener, TransportSecurity? tls, ILoggingAdapter log, TimeSpan? warnEvery)
    {
        this.listener = listener;
        this.tls = tls;
        this.log = log;
        unanswered = new UnansweredConnections(MaxUnansweredPerAddress, line => log.Warning("{0}", line));
        warnings = new PeerWarnings(line => log.Warning("{0}", line), "weight channel", warnEvery);
        Port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        _ = AcceptLoop();
    }

    /// <summary>Listens on <paramref name="bind"/>:<paramref name="port"/> (0: any free port); a taken port is a usage error naming <paramref name="option"/>.</summary>
    public static WeightChannelServer Start(string bind, int port, TransportSecurity? tls, ILoggingAdapter log, string option = "--data-port",
        TimeSpan? firstRequest = null, TimeSpan? idleLimit = null, TimeSpan? stalled = null, TimeSpan? warnEvery = null)
    {
        var address = IPAddress.TryParse(bind, out var ip) ? ip : Dns.GetHostAddresses(bind).First();
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(128);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new FedAvg.Core.UsageException(e.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"{option} {port}: {bind}:{port} is already in use; choose another port."
                : $"{option} {port}: cannot listen on {bind}:{port} ({e.Message}).");
        }
        return new WeightChannelServer(socket, tls, log, warnEvery)
        {
            FirstRequest = firstRequest ?? TimeSpan.FromSeconds(10), IdleLimit = idleLimit ?? TimeSpan.FromMinutes(10), Idle = stalled ?? TimeSpan.FromSeconds(30),
        };
    }

    /// <summary>The model's length: uploads of 1 to twice this many floats are taken (the server judges the length); before this is set, none.</summary>
    public void AcceptUploadsOf(int length) => uploadLength = length;

    /// <summary>Offers <paramref name="weights"/> (read-only until withdrawn) under a new ticket.</summary>
    public ChanneledWeights Offer(float[] weights, WeightHeader header) => new(header, Port, Offer(weights, node: null).Ticket);

    /// <summary>
    /// Offers <paramref name="weights"/> (read-only until withdrawn) to <paramref name="node"/> under a new ticket, and
    /// pushes them at once on that node's subscription if it holds one (after the push being written, if any; not
    /// behind two) (<c>Pushed</c>); the node fetches them otherwise. A node may subscribe with a ticket offered to it.
    /// </summary>
    public (Guid Ticket, bool Pushed) Offer(float[] weights, string? node)
    {
        var ticket = WeightChannel.NewTicket();
        offers[ticket] = new Offered(weights, node);
        return (ticket, node is not null && Push(node, ticket, weights));
    }

    bool Push(string node, Guid ticket, float[] weights)
    {
        if (!subscriptions.TryGetValue(node, out var sub)) return false;
        // one push may wait behind the one being written (a round that follows the last at once); a node that is
        // slower than that fetches instead
        if (Interlocked.Increment(ref sub.Pending) > 2)
        {
            Interlocked.Decrement(ref sub.Pending);
            return false;
        }
        if (tls is not null && sub.Certificate is { } presented && tls.RevokedWhy(presented) is { } revoked)
        {
            log.Warning("weight channel: ended the subscription of {0} ({1}): {2}", node, sub.Peer, revoked);
            sub.Ended.Cancel();
            Interlocked.Decrement(ref sub.Pending);
            revokedNode?.Invoke(node, revoked);
            return false;
        }
        _ = Task.Run(async () =>
        {
            bool writing = false;
            try
            {
                await sub.Writing.WaitAsync(sub.Ended.Token).ConfigureAwait(false);
                writing = true;
                var head = new byte[WeightChannel.PushHeadBytes];
                ticket.TryWriteBytes(head);
                BinaryPrimitives.WriteInt64LittleEndian(head.AsSpan(16), (long)weights.Length * sizeof(float));
                await sub.Stream.WriteAsync(head, sub.Ended.Token).ConfigureAwait(false);
                await WeightChannel.WriteVector(sub.Stream, WeightChannel.BytesOf(weights), Idle, sub.Ended.Token).ConfigureAwait(false);
                Interlocked.Increment(ref pushes);
                sub.Ended.CancelAfter(IdleLimit); // a subscription without a push for this long ends, as an idle connection does
            }
            catch (Exception e)
            {
                // the node sees its subscription end, and fetches the vector under the same ticket
                if (!stopping.IsCancellationRequested)
                    log.Warning("weight channel: a push to {0} ({1}) failed: {2}; a node still there fetches the vector instead", node, sub.Peer,
                        e is not OperationCanceledException ? Describe(e)
                        : sub.Ended.IsCancellationRequested ? "its subscription ended"
                        : $"it took none of the vector's bytes for {Idle.TotalSeconds:0} s");
                sub.Ended.Cancel();
            }
            finally
            {
                if (writing) sub.Writing.Release();
                Interlocked.Decrement(ref sub.Pending);
            }
        });
        return true;
    }

    /// <summary>A fetch of <paramref name="ticket"/> from now on is refused (one already under way finishes).</summary>
    public void Withdraw(Guid ticket) => offers.TryRemove(ticket, out _);

    /// <summary>Holds the connection as <paramref name="ticket"/>'s node's subscription until either end closes it; false: the connection closes.</summary>
    async Task<bool> ServeSubscription(Stream stream, Guid ticket, string peer)
    {
        if (!offers.TryGetValue(ticket, out var offer) || offer.Node is not { } node)
        {
            log.Info("weight channel: {0} asked to subscribe with a ticket not offered to a node (any more)", peer);
            await WeightChannel.WriteStatus(stream, WeightChannel.Unknown, "that ticket names no weights offered to a node (any more)", stopping.Token).ConfigureAwait(false);
            return false;
        }
        // Not disposed, since a push that ends as the subscription does may still touch it, and therefore not linked
        // to the channel's stop either: a linked source that is never disposed stays registered on the channel's
        // token for the channel's life. The registration below is undone when the subscription ends.
        var ended = new CancellationTokenSource();
        using var stop = stopping.Token.Register(static s => ((CancellationTokenSource)s!).Cancel(), ended);
        ended.CancelAfter(IdleLimit);
        var sub = new Subscription(stream, peer, (stream as SslStream)?.RemoteCertificate, ended);
        if (subscriptions.TryGetValue(node, out var old)) old.Ended.Cancel(); // a node holds one: its newest
        subscriptions[node] = sub;
        try
        {
            await stream.WriteAsync(new[] { WeightChannel.Ok }, stopping.Token).ConfigureAwait(false);
            await stream.FlushAsync(stopping.Token).ConfigureAwait(false);
            // the node sends nothing more: a read ends when it closes the connection, or when the subscription ends
            var nothing = new byte[1];
            try
            {
                if (await stream.ReadAsync(nothing, ended.Token).ConfigureAwait(false) > 0)
                    log.Warning("weight channel: ended the subscription of {0} ({1}): it sent bytes on it", node, peer);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested) { }
            // a push under way fails with the connection, and the node fetches what it missed
            return false;
        }
        finally
        {
            subscriptions.TryRemove(new KeyValuePair<string, Subscription>(node, sub));
            sub.Ended.Cancel();
        }
    }

    /// <summary>
    /// The uploaded vector <paramref name="payload"/> names, checked against its header; the caller owns it (rented
    /// from <see cref="WeightBuffers"/>). Throws a <see cref="WeightTransferException"/> that says what was wrong.
    /// </summary>
    public float[] Claim(ChanneledWeights payload)
    {
        if (!uploads.TryRemove(payload.Ticket, out var stored))
            throw new WeightTransferException("no upload under its ticket (never uploaded, claimed already, or expired)");
        Interlocked.Add(ref uploadBytes, -(long)stored.Weights.Length * sizeof(float));
        string? fault = stored.Weights.Length != payload.Header.Length ? $"header says {payload.Header.Length} weights, the upload holds {stored.Weights.Length}"
            : stored.Checksum != payload.Header.Checksum ? "the upload's checksum differs from the update's header"
            : null;
        if (fault is null) return stored.Weights;
        WeightBuffers.Return(stored.Weights);
        throw new WeightTransferException(fault);
    }

    /// <summary>Drops an upload whose update was refused, so its buffer is not held until it expires.</summary>
    public void Discard(ChanneledWeights payload)
    {
        if (!uploads.TryRemove(payload.Ticket, out var stored)) return;
        Interlocked.Add(ref uploadBytes, -(long)stored.Weights.Length * sizeof(float));
        WeightBuffers.Return(stored.Weights);
    }

    async Task AcceptLoop()
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                log.Warning("weight channel: accept failed: {0}", e.Message);
                continue;
            }
            // an address over its share is refused before it counts against everyone's
            var from = (socket.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
            if (!unanswered.TryOpen(from))
            {
                socket.Dispose();
                continue;
            }
            if (Interlocked.Increment(ref connections) > MaxConnections)
            {
                Interlocked.Decrement(ref connections);
                unanswered.Answered(from);
                warnings.Warn(from, "full", $"weight channel: refused {socket.RemoteEndPoint}: {MaxConnections} connections open already");
                socket.Dispose();
                continue;
            }
            _ = Serve(socket, from);
        }
    }

    async Task Serve(Socket socket, IPAddress from)
    {
        string peer = socket.RemoteEndPoint?.ToString() ?? "a peer";
        bool answered = false, requested = false;
        void Answered()
        {
            if (answered) return;
            answered = true;
            unanswered.Answered(from); // its first request came (or the connection ended): the slot goes back
        }
        socket.NoDelay = true;
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            if (tls is not null)
            {
                var ssl = WeightChannel.Secure(stream);
                stream = ssl;
                using var handshake = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
                handshake.CancelAfter(FirstRequest);
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = tls.Certificate,
                    ClientCertificateRequired = true,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                        WeightChannel.Accept(tls, certificate, peer, line => warnings.Warn(from, line.Replace(peer, "…"), line)),
                }, handshake.Token).ConfigureAwait(false);
            }
            var request = new byte[WeightChannel.RequestBytes];
            for (bool first = true; ; first = false)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
                wait.CancelAfter(first ? FirstRequest : IdleLimit);
                int got;
                try
                {
                    got = await stream.ReadAtLeastAsync(request, request.Length, throwOnEndOfStream: false, wait.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!first && !stopping.IsCancellationRequested)
                {
                    return; // a node's pooled connection, idle for long: closed quietly, the node opens a new one when it needs it
                }
                Answered();
                if (got == 0) return; // the node closed its connection
                if (got < request.Length || !request.AsSpan(0, 4).SequenceEqual(WeightChannel.Magic))
                {
                    warnings.Warn(from, "not a request", $"weight channel: closed the connection from {peer}: {got} bytes that are not a request"
                                                   + $" (they start {Convert.ToHexString(request, 0, Math.Min(got, 8))})");
                    return;
                }
                requested = true;
                if (tls is not null && (stream as SslStream)?.RemoteCertificate is { } presented && tls.RevokedWhy(presented) is { } revoked)
                {
                    // revoked since this connection was authenticated (revoked.txt is read again when it changes):
                    // a node already connected fetches and uploads nothing more
                    log.Warning("weight channel: refused a request from {0}: {1}", peer, revoked);
                    if (offers.TryGetValue(new Guid(request.AsSpan(5, 16)), out var offered) && offered.Node is { } revokedAs)
                        revokedNode?.Invoke(revokedAs, revoked); // the ticket was sent to that node alone
                    await WeightChannel.WriteStatus(stream, WeightChannel.Refused, revoked, stopping.Token).ConfigureAwait(false);
                    return;
                }
                var ticket = new Guid(request.AsSpan(5, 16));
                bool keepOpen = request[4] switch
                {
                    WeightChannel.Fetch => await ServeFetch(stream, ticket, peer).ConfigureAwait(false),
                    WeightChannel.Upload => await ReceiveUpload(stream, ticket, peer).ConfigureAwait(false),
                    WeightChannel.Subscribe => await ServeSubscription(stream, ticket, peer).ConfigureAwait(false),
                    var op => Bad($"unknown operation {op}"),
                };
                if (!keepOpen) return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or AuthenticationException
                                      or WeightTransferException or ObjectDisposedException)
        {
            if (!stopping.IsCancellationRequested)
            {
                // before a first request it may be anyone, as often as it likes (summed); a node's transfer that fails is said each time
                string why = Describe(e), line = $"weight channel: closed the connection from {peer}: {why}";
                if (requested) log.Warning("{0}", line);
                else warnings.Warn(from, why, line);
            }
        }
        catch (Exception e)
        {
            log.Error(e, "weight channel: the connection from {0} failed", peer);
        }
        finally
        {
            Answered();
            Interlocked.Decrement(ref connections);
            await stream.DisposeAsync().ConfigureAwait(false);
        }

        bool Bad(string reason)
        {
            log.Warning("weight channel: closed the connection from {0}: {1}", peer, reason);
            return false;
        }
    }

    static string Describe(Exception e) => e switch
    {
        OperationCanceledException => "it sent no request in time",
        AuthenticationException a => $"TLS handshake failed ({a.GetBaseException().Message})",
        _ => e.GetBaseException().Message,
    };

    async Task<bool> ServeFetch(Stream stream, Guid ticket, string peer)
    {
        if (!offers.TryGetValue(ticket, out var offered))
        {
            log.Info("weight channel: {0} asked for weights that are not offered (any more): a round that has moved on", peer);
            await WeightChannel.WriteStatus(stream, WeightChannel.Unknown, "these weights are not offered any more (the round moved on)", stopping.Token).ConfigureAwait(false);
            return true;
        }
        var offer = offered.Weights;
        var head = new byte[9];
        head[0] = offered.Node is null ? WeightChannel.Ok : WeightChannel.OkSubscribe;
        BinaryPrimitives.WriteInt64LittleEndian(head.AsSpan(1), (long)offer.Length * sizeof(float));
        await stream.WriteAsync(head, stopping.Token).ConfigureAwait(false);
        await WeightChannel.WriteVector(stream, WeightChannel.BytesOf(offer), Idle, stopping.Token).ConfigureAwait(false);
        Interlocked.Increment(ref fetchesServed);
        return true;
    }

    async Task<bool> ReceiveUpload(Stream stream, Guid ticket, string peer)
    {
        var head = new byte[WeightChannel.UploadHeaderBytes];
        await stream.ReadExactlyAsync(head, stopping.Token).ConfigureAwait(false);
        int length = BinaryPrimitives.ReadInt32LittleEndian(head);
        ulong checksum = BinaryPrimitives.ReadUInt64LittleEndian(head.AsSpan(4));
        string? refusal = uploadLength < 0 ? "this server takes no uploads yet"
            // any length up to twice the model's is taken, so that the server can refuse a wrong one by name
            // ("malformed") as it refuses every other lie; more than that is not an update, and not read
            : length < 1 || length > 2L * uploadLength ? $"an upload of {length} weights, the model has {uploadLength}"
            : Interlocked.Read(ref uploadBytes) + (long)length * sizeof(float) > MaxUploadBytes ? $"more than {MaxUploadBytes >> 20} MiB of uploads waiting to be claimed"
            : uploads.ContainsKey(ticket) ? "its ticket is in use"
            : null;
        if (refusal is not null)
        {
            // the body that follows is not read: the connection closes after the answer
            log.Warning("weight channel: refused an upload from {0}: {1}", peer, refusal);
            await WeightChannel.WriteStatus(stream, WeightChannel.Refused, refusal, stopping.Token).ConfigureAwait(false);
            return false;
        }
        Expire();
        var weights = WeightBuffers.Rent(length);
        var hash = new XxHash3();
        try
        {
            await WeightChannel.ReadHashed(stream, WeightChannel.BytesOf(weights), hash, Idle, stopping.Token).ConfigureAwait(false);
        }
        catch
        {
            WeightBuffers.Return(weights);
            throw;
        }
        if (hash.GetCurrentHashAsUInt64() != checksum)
        {
            WeightBuffers.Return(weights);
            log.Warning("weight channel: refused an upload from {0}: checksum mismatch (damaged in transit)", peer);
            await WeightChannel.WriteStatus(stream, WeightChannel.Damaged, "checksum mismatch: the upload was damaged in transit", stopping.Token).ConfigureAwait(false);
            return true;
        }
        uploads[ticket] = new Stored(weights, checksum, DateTime.UtcNow);
        Interlocked.Add(ref uploadBytes, (long)length * sizeof(float));
        await stream.WriteAsync(new[] { WeightChannel.Ok }, stopping.Token).ConfigureAwait(false);
        await stream.FlushAsync(stopping.Token).ConfigureAwait(false);
        return true;
    }

    void Expire()
    {
        var cutoff = DateTime.UtcNow - UploadLifetime;
        foreach (var (ticket, stored) in uploads)
            if (stored.At < cutoff && uploads.TryRemove(ticket, out _))
            {
                Interlocked.Add(ref uploadBytes, -(long)stored.Weights.Length * sizeof(float));
                WeightBuffers.Return(stored.Weights);
            }
    }

    public void Dispose()
    {
        stopping.Cancel();
        listener.Dispose();
        warnings.Dispose();
    }
}

/// <summary>
/// A node's end of the <see cref="WeightChannel"/>: fetches the round's weights and uploads updates over pooled
/// connections to the server (one per concurrent transfer, kept between rounds).
/// </summary>
public sealed class WeightChannelClient : IDisposable
{
    static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);
    static readonly TimeSpan ConnectLimit = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Transfers at once, hence connections a node opens: more gain nothing on one link, and a node of 2,100 tiny
    /// clients that finish together would otherwise open one connection each, past the server's 1,024.
    /// </summary>
    public const int MaxTransfers = 8;
    readonly SemaphoreSlim transfers = new(MaxTransfers);
    readonly TransportSecurity? tls;
    readonly Action<string> warn;
    readonly ConcurrentDictionary<(string Host, int Port), ConcurrentBag<(Stream Stream, Socket Socket)>> idle = new();
    readonly ConditionalWeakTable<Stream, Socket> sockets = new();
    bool disposed;

    /// <param name="warn">Where a refused server certificate is reported (the node's log).</param>
    public WeightChannelClient(TransportSecurity? tls, Action<string>? warn = null)
    {
        this.tls = tls;
        this.warn = warn ?? (_ => { });
    }

    /// <summary>
    /// The vector <paramref name="payload"/> names, from the channel of <paramref name="host"/> (the server's Akka
    /// address: a payload cannot send a node elsewhere), checked against its header. It lands in
    /// <paramref name="allocate"/>'s array, which the caller owns.
    /// </summary>
    /// <remarks>
    /// After its first fetch from a server the node subscribes to it, and from then on the server pushes the vectors
    /// it offers this node (<see cref="ChanneledWeights.Pushed"/>) as it sends the round: this waits for that push,
    /// checks it against the header, and fetches under the same ticket if it does not come. Every batch of a round
    /// gets the same array.
    /// </remarks>
    public async Task<float[]> Fetch(ChanneledWeights payload, string host, Func<int, float[]>? allocate = null, CancellationToken cancel = default)
    {
        if (payload.Pushed && subscribed.TryGetValue((host, payload.Port), out var subscription)
            && await Pushed(subscription, payload, cancel).ConfigureAwait(false) is { } pushed)
            return pushed;
        float[] weights;
        bool subscribable;
        await transfers.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            (weights, subscribable) = await FetchOnce(payload, host, allocate, cancel).ConfigureAwait(false);
        }
        finally
        {
            transfers.Release();
        }
        if (subscribable) Subscribe(host, payload.Port, payload.Ticket, weights.Length, allocate);
        return weights;
    }

    /// <summary>Pushes received on subscriptions, and whether a subscription is open, for tests and the benchmark.</summary>
    public long PushesReceived => Interlocked.Read(ref pushesReceived);
    long pushesReceived;

    /// <summary>Whether this node holds a subscription to the channel at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public bool IsSubscribed(string host, int port) => subscribed.ContainsKey((host, port));

    readonly ConcurrentDictionary<(string Host, int Port), Subscribed> subscribed = new();

    /// <summary>A pushed vector: <see cref="Started"/> once its first bytes come, <see cref="Done"/> once all are in and hashed.</summary>
    sealed class Push
    {
        public readonly TaskCompletionSource Started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource<(float[] Weights, ulong Hash)> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Fail(Exception reason)
        {
            Started.TrySetException(reason);
            Done.TrySetException(reason);
        }
    }

    /// <summary>A subscription's vectors by ticket: the newest push (and any a round's messages wait for).</summary>
    sealed class Subscribed
    {
        readonly ConcurrentDictionary<Guid, Push> vectors = new();
        readonly ConcurrentDictionary<Guid, byte> dropped = new();
        volatile Exception? ended;

        /// <summary>Cancelled when the node's channel client is disposed: the subscription closes.</summary>
        public readonly CancellationTokenSource Closing = new();

        public Push Expect(Guid ticket)
        {
            var entry = vectors.GetOrAdd(ticket, _ => new Push());
            if (ended is { } e) entry.Fail(e);
            else if (dropped.ContainsKey(ticket)) entry.Fail(new WeightTransferException("a later push replaced it"));
            return entry;
        }

        /// <summary>A push of <paramref name="ticket"/> begins: vectors of earlier rounds are dropped, and whoever waits for one of them fetches it.</summary>
        public Push Begin(Guid ticket)
        {
            if (dropped.Count > 64) dropped.Clear();
            foreach (var (other, entry) in vectors)
                if (other != ticket && vectors.TryRemove(other, out _))
                {
                    dropped[other] = 0;
                    entry.Fail(new WeightTransferException("a later push replaced it"));
                }
            var push = Expect(ticket);
            push.Started.TrySetResult();
            return push;
        }

        public void End(Exception reason)
        {
            ended = reason;
            foreach (var entry in vectors.Values) entry.Fail(reason);
        }
    }

    async Task<float[]?> Pushed(Subscribed subscription, ChanneledWeights payload, CancellationToken cancel)
    {
        try
        {
            // the push must begin within the idle limit; once it has, the subscription's own per-window limit holds it,
            // so a big vector on a slow link is not fetched a second time beside it
            var push = subscription.Expect(payload.Ticket);
            await push.Started.Task.WaitAsync(Idle, cancel).ConfigureAwait(false);
            var (weights, hash) = await push.Done.Task.WaitAsync(cancel).ConfigureAwait(false);
            if (weights.Length == payload.Header.Length && hash == payload.Header.Checksum) return weights;
            warn($"weight channel: the weights pushed for round {payload.Header.Round} do not match their header " +
                 (weights.Length != payload.Header.Length ? $"({weights.Length} weights, the header says {payload.Header.Length})" : "(checksum mismatch)") +
                 "; fetching them");
        }
        catch (Exception e) when (!cancel.IsCancellationRequested)
        {
            warn($"weight channel: the weights pushed for round {payload.Header.Round} did not arrive ({e.GetBaseException().Message}); fetching them");
        }
        return null;
    }

    /// <summary>
    /// A vector for received weights when the caller gives no allocator (a node's ClientHost rents from WeightBuffers
    /// instead): not zeroed first, since every byte is read into it before anyone sees it, and an array whose read
    /// fails is dropped. Zeroing 6.65 MB (`mcmahan-cnn`) would cost a memset on the receive path.
    /// </summary>
    static float[] NewVector(int length) => GC.AllocateUninitializedArray<float>(length);

    /// <summary>Opens this node's subscription to the channel at <paramref name="host"/>:<paramref name="port"/> (one per server), if none is open.</summary>
    void Subscribe(string host, int port, Guid ticket, int length, Func<int, float[]>? allocate)
    {
        if (disposed || subscribed.ContainsKey((host, port))) return;
        var subscription = new Subscribed();
        if (subscribed.TryAdd((host, port), subscription)) _ = Subscription(subscription, host, port, ticket, length, allocate);
    }

    async Task Subscription(Subscribed subscription, string host, int port, Guid ticket, int length, Func<int, float[]>? allocate)
    {
        Stream? stream = null;
        Exception reason = new WeightTransferException("the subscription ended");
        try
        {
            var closing = subscription.Closing.Token;
            stream = await Connect(host, port, closing).ConfigureAwait(false);
            var request = new byte[WeightChannel.RequestBytes];
            WeightChannel.WriteRequest(request, WeightChannel.Subscribe, ticket);
            await stream.WriteAsync(request, closing).ConfigureAwait(false);
            await stream.FlushAsync(closing).ConfigureAwait(false);
            var status = new byte[1];
            await stream.ReadExactlyAsync(status, closing).ConfigureAwait(false);
            if (status[0] != WeightChannel.Ok)
            {
                reason = new WeightTransferException($"the server refused the subscription: {await WeightChannel.ReadReason(stream, default).ConfigureAwait(false)}");
                return;
            }
            var head = new byte[WeightChannel.PushHeadBytes];
            while (true)
            {
                // no time limit: the next push comes with the next round; the server ends an idle subscription
                await stream.ReadExactlyAsync(head, closing).ConfigureAwait(false);
                var pushed = new Guid(head.AsSpan(0, 16));
                long bytes = BinaryPrimitives.ReadInt64LittleEndian(head.AsSpan(16));
                if (bytes != (long)length * sizeof(float))
                    throw new WeightTransferException($"the server pushed {bytes} bytes, its weights are {(long)length * sizeof(float)}");
                var entry = subscription.Begin(pushed);
                var weights = (allocate ?? NewVector)(length);
                var hash = new XxHash3();
                await WeightChannel.ReadHashed(stream, WeightChannel.BytesOf(weights), hash, Idle, closing).ConfigureAwait(false);
                Interlocked.Increment(ref pushesReceived);
                entry.Done.TrySetResult((weights, hash.GetCurrentHashAsUInt64()));
            }
        }
        catch (Exception e)
        {
            reason = e as WeightTransferException ?? new WeightTransferException($"the subscription ended: {e.GetBaseException().Message}", e);
        }
        finally
        {
            subscribed.TryRemove(new KeyValuePair<(string, int), Subscribed>((host, port), subscription));
            subscription.End(reason);
            if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    async Task<(float[] Weights, bool Subscribable)> FetchOnce(ChanneledWeights payload, string host, Func<int, float[]>? allocate, CancellationToken cancel)
    {
        var header = payload.Header;
        var stream = await Rent(host, payload.Port, cancel).ConfigureAwait(false);
        float[]? weights = null;
        bool pooled = false; // the stream goes back to the pool only after a complete exchange
        try
        {
            var request = new byte[WeightChannel.RequestBytes];
            WeightChannel.WriteRequest(request, WeightChannel.Fetch, payload.Ticket);
            await stream.WriteAsync(request, cancel).ConfigureAwait(false);
            await stream.FlushAsync(cancel).ConfigureAwait(false);
            var head = new byte[1];
            await stream.ReadExactlyAsync(head, cancel).ConfigureAwait(false);
            if (head[0] is not (WeightChannel.Ok or WeightChannel.OkSubscribe))
            {
                string reason = await WeightChannel.ReadReason(stream, cancel).ConfigureAwait(false);
                pooled = Return(host, payload.Port, stream);
                throw new WeightTransferException($"the server's weight channel refused the fetch: {reason}");
            }
            var length = new byte[8];
            await stream.ReadExactlyAsync(length, cancel).ConfigureAwait(false);
            long bytes = BinaryPrimitives.ReadInt64LittleEndian(length);
            if (bytes != (long)header.Length * sizeof(float))
                throw new WeightTransferException($"the weight channel sends {bytes} bytes, the header announced {(long)header.Length * sizeof(float)}");
            weights = (allocate ?? NewVector)(header.Length);
            var hash = new XxHash3();
            await WeightChannel.ReadHashed(stream, WeightChannel.BytesOf(weights), hash, Idle, cancel).ConfigureAwait(false);
            pooled = Return(host, payload.Port, stream);
            if (hash.GetCurrentHashAsUInt64() != header.Checksum)
                throw new WeightTransferException("checksum mismatch: the weights were damaged in transit");
            var result = weights;
            weights = null;
            return (result, head[0] == WeightChannel.OkSubscribe);
        }
        catch (Exception e) when (e is not WeightTransferException)
        {
            throw new WeightTransferException($"fetching the weights from {host}:{payload.Port} failed: {e.GetBaseException().Message}", e);
        }
        finally
        {
            if (!pooled) await stream.DisposeAsync().ConfigureAwait(false);
            if (weights is not null) WeightBuffers.Return(weights);
        }
    }

    /// <summary>
    /// Uploads <paramref name="weights"/> to the channel of <paramref name="host"/>:<paramref name="port"/> under a new
    /// ticket; when this completes the server holds them, and the returned payload (sent in the update) names them.
    /// </summary>
    public async Task<ChanneledWeights> Upload(float[] weights, WeightHeader header, string host, int port, CancellationToken cancel = default)
    {
        await transfers.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            return await UploadOnce(weights, header, host, port, cancel).ConfigureAwait(false);
        }
        finally
        {
            transfers.Release();
        }
    }

    async Task<ChanneledWeights> UploadOnce(float[] weights, WeightHeader header, string host, int port, CancellationToken cancel)
    {
        var ticket = WeightChannel.NewTicket();
        var stream = await Rent(host, port, cancel).ConfigureAwait(false);
        bool pooled = false;
        try
        {
            var request = new byte[WeightChannel.RequestBytes + WeightChannel.UploadHeaderBytes];
            WeightChannel.WriteRequest(request, WeightChannel.Upload, ticket);
            BinaryPrimitives.WriteInt32LittleEndian(request.AsSpan(WeightChannel.RequestBytes), weights.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(WeightChannel.RequestBytes + 4), header.Checksum);
            await stream.WriteAsync(request, cancel).ConfigureAwait(false);
            await WeightChannel.WriteVector(stream, WeightChannel.BytesOf(weights), Idle, cancel).ConfigureAwait(false);
            var status = new byte[1];
            await stream.ReadExactlyAsync(status, cancel).ConfigureAwait(false);
            if (status[0] != WeightChannel.Ok)
            {
                // a refused upload's body may be unread: the server closes the connection, so it is not pooled
                string reason = await WeightChannel.ReadReason(stream, cancel).ConfigureAwait(false);
                throw new WeightTransferException($"the server's weight channel refused the upload: {reason}");
            }
            pooled = Return(host, port, stream);
            return new ChanneledWeights(header, port, ticket);
        }
        catch (Exception e) when (e is not WeightTransferException)
        {
            throw new WeightTransferException($"uploading the weights to {host}:{port} failed: {e.GetBaseException().Message}", e);
        }
        finally
        {
            if (!pooled) await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    async Task<Stream> Rent(string host, int port, CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (idle.TryGetValue((host, port), out var bag))
            while (bag.TryTake(out var pooled))
            {
                // a connection the server closed meanwhile (it restarted, or the node was idle past its limits) reads
                // as "readable with nothing to read": drop it rather than fail a round on it
                if (!pooled.Socket.Poll(0, SelectMode.SelectRead) || pooled.Socket.Available > 0) return pooled.Stream;
                await pooled.Stream.DisposeAsync().ConfigureAwait(false);
            }
        return await Connect(host, port, cancel).ConfigureAwait(false);
    }

    /// <summary>A new connection to the channel, authenticated when TLS is on.</summary>
    async Task<Stream> Connect(string host, int port, CancellationToken cancel)
    {
        // socket buffers stay the kernel's: setting SO_RCVBUF turns off Linux's receive-buffer autotuning, which a
        // real network's bandwidth-delay product needs (4 MiB buffers were within the noise on loopback here)
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream stream;
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            connect.CancelAfter(ConnectLimit);
            await socket.ConnectAsync(host, port, connect.Token).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: true);
            sockets.AddOrUpdate(stream, socket);
            if (tls is null) return stream;
            var ssl = WeightChannel.Secure(stream);
            try
            {
                await ssl.AuthenticateAsClientAsync(WeightChannel.ClientOptions(tls, host, warn), connect.Token).ConfigureAwait(false);
            }
            catch
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            sockets.AddOrUpdate(ssl, socket);
            return ssl;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or AuthenticationException or IOException)
        {
            socket.Dispose();
            throw new WeightTransferException($"cannot reach the server's weight channel at {host}:{port}: " +
                                              (e is OperationCanceledException ? $"no connection within {ConnectLimit.TotalSeconds:0} s" : e.GetBaseException().Message), e);
        }
    }

    /// <summary>Puts a connection back for the next transfer; false (the caller disposes it) once this client is disposed.</summary>
    bool Return(string host, int port, Stream stream)
    {
        if (disposed || !sockets.TryGetValue(stream, out var socket)) return false;
        idle.GetOrAdd((host, port), _ => new ConcurrentBag<(Stream, Socket)>()).Add((stream, socket));
        return true;
    }

    public void Dispose()
    {
        disposed = true;
        foreach (var subscription in subscribed.Values) subscription.Closing.Cancel();
        foreach (var bag in idle.Values)
            while (bag.TryTake(out var pooled))
                pooled.Stream.Dispose();
    }
}
