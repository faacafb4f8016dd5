using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Streams;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// The measurements behind docs/benchmarks.md's "Across machines" figures, each next to its anchor in the same run:
/// the weight codec against a plain memory copy, and a broadcast over Akka.Remote against raw TCP on loopback.
/// </summary>
public static class WireBenchmark
{
    /// <param name="HashMBps">XxHash3 alone, the checksum every vector gets once on each end of a transfer.</param>
    public sealed record Codec(double EncodeMBps, double DecodeMBps, double MemcpyMBps, double HashMBps);

    /// <summary>
    /// Encoding (<see cref="WeightStream.Encode"/>: each 64 KiB chunk copied and hashed) and decoding (<see cref="Assembler"/>: each
    /// chunk copied into the vector and hashed) of
    /// <paramref name="weights"/>, each against one memcpy of the same bytes. Medians of <paramref name="repeats"/>.
    /// </summary>
    public static Codec MeasureCodec(float[] weights, int repeats)
    {
        var bytes = MemoryMarshal.AsBytes(weights.AsSpan()).ToArray();
        var target = new byte[bytes.Length];
        var decoded = new float[weights.Length];
        double mb = bytes.Length / 1e6;
        List<byte[]> chunks = [];
        var memcpy = Median(repeats, () => bytes.AsSpan().CopyTo(target));
        EncodedWeights encoded = null!;
        var encode = Median(repeats, () => encoded = WeightStream.Encode(weights, 0, 1, "", 0));
        chunks = encoded.Chunks.ToList();
        var header = encoded.Header;
        var decode = Median(repeats, () =>
        {
            var assembler = new Assembler(header, _ => decoded);
            foreach (var c in chunks) assembler.Append(c);
            assembler.Finish();
        });
        ulong sink = 0;
        var hash = Median(repeats, () => sink ^= System.IO.Hashing.XxHash3.HashToUInt64(bytes));
        GC.KeepAlive(sink);
        return new Codec(mb / encode, mb / decode, mb / memcpy, mb / hash);
    }

    /// <param name="ChannelSeconds">The weight channel's broadcast, as a cluster runs it: the bytes pushed on each node's subscription while the
    /// TrainRound goes through Akka; each node, once it holds both, says so with one byte on a socket, as raw TCP's receivers do.</param>
    /// <param name="ChannelAkkaReplySeconds">The same, each node saying so with a reply through Akka instead (about half an Akka round trip more).</param>
    /// <param name="AkkaSeconds">The same vector as stream refs of 64 KiB chunks through Akka.Remote (what a system without a channel does).</param>
    /// <param name="AssociationSeconds">Median time of a first request to a new node: TCP connect, Akka handshake, reply.</param>
    /// <param name="MessageSeconds">One request and reply through Akka.Remote to every node at once, no weights: the part of a channel round that is not the bytes.</param>
    /// <param name="FetchSeconds">The channel's fetch alone (a request and the vector, checked on the node; no Akka message), as round 1 moves it.</param>
    /// <param name="PushSeconds">The channel's push alone (the vector on each node's subscription, checked there; no Akka message), as later rounds move it.</param>
    /// <param name="PushedShare">Of the channel's rounds' vectors, the share pushed on the nodes' subscriptions (the rest were fetched).</param>
    public sealed record Broadcast(int Nodes, double Megabytes, double ChannelSeconds, double AkkaSeconds, double RawTcpSeconds, double AssociationSeconds,
        double MessageSeconds, double FetchSeconds, double PushSeconds, double PushedShare, double ChannelAkkaReplySeconds);

    /// <summary>
    /// One round's broadcast: the same vector to <paramref name="nodes"/> actor systems over loopback TCP, each receiver
    /// checking length and checksum, until every node has it and said so; through the weight channel and as stream
    /// refs, against raw TCP sockets moving the same bytes to as many receivers at once with a one-byte reply. The
    /// channel and raw TCP rounds alternate, so load that changes during the run weighs on both alike. Medians of
    /// <paramref name="repeats"/> after one warm-up each.
    /// </summary>
    public static async Task<Broadcast> MeasureBroadcast(float[] weights, int nodes, int repeats)
    {
        await using var rig = await Rig.Start(weights, nodes, null);
        await rig.Round(channel: false);
        var akka = await MedianAsync(repeats, () => rig.Round(channel: false));
        await using var raw = await RawTcp.Start(MemoryMarshal.AsBytes(weights.AsSpan()).ToArray(), nodes);
        var t = await Alternate(repeats, () => rig.Round(channel: true, socketAck: true), raw.Round, rig.Ping, rig.FetchOnly, rig.PushOnly,
            () => rig.Round(channel: true));
        return new Broadcast(nodes, weights.Length * 4.0 * nodes / 1e6, t[0], akka, t[1], rig.AssociationSeconds, t[2], t[3], t[4], rig.PushedShare, t[5]);
    }

    /// <param name="AssociationSeconds">Median time of a first request to a new node: TCP connect, (TLS handshake,) Akka handshake, reply.</param>
    /// <param name="PlaintextSeconds">Through the weight channel, as a cluster broadcasts; <paramref name="PlaintextStreamSeconds"/>: as stream refs.</param>
    /// <param name="RawSeconds">Raw TCP to as many receivers; <paramref name="SealedSeconds"/>: the same with the bytes sealed once
    /// per round and opened on receipt (AES-128-GCM, no TLS): the bound of any encryption of the bytes on this machine.</param>
    /// <param name="RawTlsSeconds">Raw TCP to as many receivers, each socket in a bare SslStream (mutual TLS, the
    /// vector in one write and one read to the end): TLS as .NET gives it, with none of the channel's own layers.</param>
    public sealed record Secured(int Nodes, double Megabytes, double PlaintextSeconds, double TlsSeconds,
        double PlaintextStreamSeconds, double TlsStreamSeconds,
        double PlaintextAssociationSeconds, double TlsAssociationSeconds, double RawSeconds, double SealedSeconds, double RawTlsSeconds);

    /// <summary>
    /// The same broadcast in plaintext and with mutual TLS (<paramref name="tls"/>'s certificate on every system, as
    /// `fedavg server --tls-cert … --tls-ca …`), both sets of systems up at once, and raw TCP with and without the bytes
    /// sealed beside them; all their rounds alternate, so that a machine whose load changes during the run weighs on
    /// each alike. Medians of <paramref name="repeats"/> each.
    /// </summary>
    public static async Task<Secured> MeasureBroadcastWithTls(float[] weights, int nodes, int repeats, TransportSecurity tls)
    {
        await using var plain = await Rig.Start(weights, nodes, null);
        await using var secure = await Rig.Start(weights, nodes, tls);
        var bytes = MemoryMarshal.AsBytes(weights.AsSpan()).ToArray();
        await using var raw = await RawTcp.Start(bytes, nodes);
        await using var sealedRaw = await RawTcp.Start(bytes, nodes, seal: true);
        await using var tlsRaw = await RawTcp.Start(bytes, nodes, tls: tls);
        var t = await Alternate(repeats, () => plain.Round(channel: true), () => secure.Round(channel: true),
            () => plain.Round(channel: false), () => secure.Round(channel: false), raw.Round, sealedRaw.Round, tlsRaw.Round);
        return new Secured(nodes, weights.Length * 4.0 * nodes / 1e6, t[0], t[1], t[2], t[3], plain.AssociationSeconds, secure.AssociationSeconds,
            t[4], t[5], t[6]);
    }

    /// <summary>A sender and <c>nodes</c> receiving actor systems on loopback, with or without TLS.</summary>
    sealed class Rig : IAsyncDisposable
    {
        readonly float[] weights;
        readonly ActorSystem sender;
        readonly List<ActorSystem> receivers;
        readonly List<IActorRef> sinks = [];
        readonly WeightChannelServer channel;
        public double AssociationSeconds { get; private set; }

        Rig(float[] weights, ActorSystem sender, List<ActorSystem> receivers, TransportSecurity? tls)
        {
            this.weights = weights;
            this.sender = sender;
            this.receivers = receivers;
            channel = WeightChannelServer.Start("127.0.0.1", 0, tls, Akka.Event.Logging.GetLogger(sender, "weight-channel"));
        }

        public static async Task<Rig> Start(float[] weights, int nodes, TransportSecurity? tls)
        {
            string kind = tls is null ? "plain" : "tls";
            ActorSystem Create(string name) => BenchSystem(name, tls);
            var rig = new Rig(weights, Create($"bench-sender-{kind}"), Enumerable.Range(0, nodes).Select(i => Create($"bench-node-{kind}-{i}")).ToList(), tls);
            var associations = new List<double>();
            foreach (var system in rig.receivers)
            {
                // each node has its own client (its own connections), as each fedavg node process does
                var fetcher = new WeightChannelClient(tls);
                system.RegisterOnTermination(fetcher.Dispose);
                var direct = new WeightChannelClient(tls);
                system.RegisterOnTermination(direct.Dispose);
                rig.nodeFetchers.Add(direct);
                rig.nodeBuffers.Add(new float[weights.Length]);
                // a socket on which the node says "I have it" with one byte, as the raw TCP receivers do
                var ackListener = new TcpListener(IPAddress.Loopback, 0);
                ackListener.Start();
                var ackClient = new TcpClient { NoDelay = true };
                await ackClient.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)ackListener.LocalEndpoint).Port);
                var ackServer = await ackListener.AcceptTcpClientAsync();
                ackServer.NoDelay = true;
                ackListener.Stop();
                rig.ackSockets.Add(ackServer);
                system.RegisterOnTermination(ackClient.Dispose);
                system.ActorOf(Props.Create(() => new Sink(fetcher, ackClient.GetStream())), "sink");
                rig.sinkFetchers.Add(fetcher);
                var address = ((ExtendedActorSystem)system).Provider.DefaultAddress;
                var clock = Stopwatch.StartNew();
                rig.sinks.Add(await rig.sender.ActorSelection(new RootActorPath(address) / "user" / "sink").ResolveOne(TimeSpan.FromSeconds(10)));
                associations.Add(clock.Elapsed.TotalSeconds);
            }
            rig.AssociationSeconds = Middle(associations);
            return rig;
        }

        readonly List<WeightChannelClient> nodeFetchers = [];
        readonly List<WeightChannelClient> sinkFetchers = [];
        readonly List<TcpClient> ackSockets = [];

        /// <summary>The channel's push alone: an offer to every node, pushed on its subscription and checked there against the header, no Akka message around it.</summary>
        public async Task PushOnly()
        {
            var header = Task.Run(() => WeightStream.Header(0x1234, 1, "", 0, weights));
            var offers = sinkFetchers.Select((_, i) => channel.Offer(weights, $"node-{i}")).ToList();
            try
            {
                var h = await header;
                var received = await Task.WhenAll(sinkFetchers.Select((f, i) => f.Fetch(new ChanneledWeights(h, channel.Port, offers[i].Ticket, offers[i].Pushed), "127.0.0.1",
                    n => nodeBuffers[i])));
                // a push lands where the subscription's allocator (the sink's, as a node's) put it: back to the pool
                foreach (var vector in received) WeightBuffers.Return(vector);
            }
            finally
            {
                foreach (var (ticket, _) in offers) channel.Withdraw(ticket);
            }
        }
        long roundVectors, roundPushes;

        /// <summary>Of the vectors the channel rounds sent, the share pushed on a subscription (the rest were fetched).</summary>
        public double PushedShare => roundVectors == 0 ? 0 : (double)roundPushes / roundVectors;
        readonly List<float[]> nodeBuffers = [];

        /// <summary>The channel alone: every node's fetch at once, no Akka message around it.</summary>
        public async Task FetchOnly()
        {
            var offer = channel.Offer(weights, WeightStream.Header(0x1234, 1, "", 0, weights));
            try
            {
                await Task.WhenAll(nodeFetchers.Select((f, i) => f.Fetch(offer, "127.0.0.1", n => nodeBuffers[i])));
            }
            finally
            {
                channel.Withdraw(offer.Ticket);
            }
        }

        /// <summary>A message to every node and its reply, nothing else.</summary>
        public Task Ping() => Task.WhenAll(sinks.Select(sink => sink.Ask<Registered>(RegisterAgain.Instance, TimeSpan.FromMinutes(1))));

        /// <summary>
        /// One round: through the weight channel (<paramref name="channel"/>) or as stream refs. Each node says it holds
        /// the vector and its <see cref="TrainRound"/> with one byte on a socket (<paramref name="socketAck"/>, as the raw
        /// TCP receivers do), or with a reply through Akka.
        /// </summary>
        public async Task Round(bool channel, bool socketAck = false)
        {
            if (channel)
            {
                // as the server does: an offer for each node, pushed at once to a subscribed node, the checksum (which
                // the message carries) computed beside the pushes, the vector itself on the socket
                var ch = this.channel;
                var header = Task.Run(() => WeightStream.Header(0x1234, 1, "", 0, weights));
                var offers = sinks.Select((_, i) => ch.Offer(weights, $"node-{i}")).ToList();
                roundVectors += offers.Count;
                roundPushes += offers.Count(o => o.Pushed);
                try
                {
                    var h = await header;
                    await Task.WhenAll(sinks.Select(async (sink, i) =>
                    {
                        var round = new TrainRound(1, 1, [], RoundConfig.Of(("epochs", 1)), new ChanneledWeights(h, ch.Port, offers[i].Ticket, offers[i].Pushed));
                        if (socketAck)
                        {
                            sink.Tell(round, ActorRefs.NoSender);
                            var got = new byte[1];
                            using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(1));
                            await ackSockets[i].GetStream().ReadExactlyAsync(got, limit.Token);
                            if (got[0] != 1) throw new InvalidOperationException("a node did not receive the weights");
                            return;
                        }
                        var reply = await sink.Ask<Registered>(round, TimeSpan.FromMinutes(1));
                        if (reply.Clients != weights.Length) throw new InvalidOperationException($"a node received {reply.Clients} weights");
                    }));
                }
                finally
                {
                    foreach (var (ticket, _) in offers) ch.Withdraw(ticket);
                }
                return;
            }
            var materializer = sender.Materializer();
            var encoded = WeightStream.Encode(weights, 0x1234, 1, "", 0); // once per round, as the server does
            var acks = sinks.Select(async sink =>
            {
                var payload = await WeightStream.Stream(encoded, materializer);
                var ack = await sink.Ask<Registered>(new TrainRound(1, 1, [], RoundConfig.Of(("epochs", 1)), payload), TimeSpan.FromMinutes(1));
                if (ack.Clients != weights.Length) throw new InvalidOperationException($"a node received {ack.Clients} weights");
            });
            await Task.WhenAll(acks);
        }

        public async ValueTask DisposeAsync()
        {
            // the systems stop at once, so DotNetty and remoting warn that connections closed mid-flush ("Unable to
            // REMOVE channel", "flushing might not have been successful"): true of any teardown, nothing about the figures
            foreach (var system in receivers.Append(sender)) system.EventStream.SetLogLevel(Akka.Event.LogLevel.ErrorLevel);
            await Task.WhenAll(receivers.Select(r => r.Terminate()).Append(sender.Terminate()));
            channel.Dispose();
            foreach (var ack in ackSockets) ack.Dispose();
        }
    }

    /// <summary>
    /// A mutual TLS handshake on loopback with <paramref name="tls"/>'s certificate on both sides, each side checking the
    /// other against the federation's CA as the transport does: TCP connect to both sides authenticated. Median seconds.
    /// </summary>
    public static async Task<double> MeasureTlsHandshake(TransportSecurity tls, int repeats)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        async Task Once()
        {
            var accept = listener.AcceptTcpClientAsync();
            using var client = new TcpClient { NoDelay = true };
            await client.ConnectAsync(IPAddress.Loopback, port);
            using var server = await accept;
            var (clientSsl, serverSsl) = await Secure(client, server, tls);
            clientSsl.Dispose();
            serverSsl.Dispose();
        }
        for (int i = 0; i < 5; i++) await Once(); // warm-up
        return await MedianAsync(repeats, Once);
    }

    /// <summary>Both ends of a loopback connection in SslStreams, mutually authenticated with <paramref name="tls"/>'s certificate.</summary>
    static async Task<(System.Net.Security.SslStream Client, System.Net.Security.SslStream Server)> Secure(TcpClient client, TcpClient server, TransportSecurity tls)
    {
        bool Check(object _, System.Security.Cryptography.X509Certificates.X509Certificate? c, System.Security.Cryptography.X509Certificates.X509Chain? __,
            System.Net.Security.SslPolicyErrors ___) => c is System.Security.Cryptography.X509Certificates.X509Certificate2 x && tls.Check(x) is null;
        var serverSsl = new System.Net.Security.SslStream(server.GetStream(), false, Check);
        var clientSsl = new System.Net.Security.SslStream(client.GetStream(), false, Check);
        await Task.WhenAll(
            serverSsl.AuthenticateAsServerAsync(new System.Net.Security.SslServerAuthenticationOptions
                { ServerCertificate = tls.Certificate, ClientCertificateRequired = true }),
            clientSsl.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
                { TargetHost = "fedavg", ClientCertificates = [tls.Certificate] }));
        return (clientSsl, serverSsl);
    }

    /// <summary>
    /// An actor system of a benchmark: Akka.Remote (not the cluster, so that no gossip shares the connections) on a
    /// loopback port the OS picks, over simulation.conf and cluster.conf as `fedavg server` and `fedavg node` are, with
    /// <paramref name="tls"/>'s certificate when given, and <paramref name="extra"/> HOCON over all of it.
    /// </summary>
    static ActorSystem BenchSystem(string name, TransportSecurity? tls, string extra = "")
    {
        var config = ConfigurationFactory.ParseString($$"""
            {{extra}}
            akka.actor.provider = remote
            akka.loglevel = WARNING
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", public-hostname = "127.0.0.1", port = 0, enable-ssl = {{(tls is null ? "off" : "on")}} }
            """).WithFallback(HoconFiles.Load(["simulation.conf", "cluster.conf"]));
        return tls is null ? ActorSystem.Create(name, config) : ActorSystem.Create(name, BootstrapSetup.Create().WithConfig(config).And(tls.Setup()));
    }

    sealed class Echo : ReceiveActor
    {
        public Echo() => ReceiveAny(m => Sender.Tell(m));
    }

    /// <summary>
    /// <paramref name="count"/> first requests, each to a new actor system (a node that has just started): resolving an
    /// actor there and one reply, which is TCP connect, the TLS handshake when <paramref name="tls"/> is given, Akka's
    /// association handshake, and two round trips. Milliseconds each, in order, with the transport's
    /// <paramref name="heartbeat"/> (the systems: <see cref="BenchSystem"/>).
    /// </summary>
    public static async Task<IReadOnlyList<double>> MeasureFirstRequests(TransportSecurity? tls, int count, TimeSpan heartbeat)
    {
        string extra = $"akka.remote.transport-failure-detector.heartbeat-interval = {heartbeat.TotalMilliseconds}ms";
        ActorSystem Create(string name) => BenchSystem(name, tls, extra);
        var sender = Create("bench-first-sender");
        var times = new List<double>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var node = Create($"bench-first-node-{i}");
                try
                {
                    node.ActorOf(Props.Create(() => new Echo()), "echo");
                    var address = ((ExtendedActorSystem)node).Provider.DefaultAddress;
                    var clock = Stopwatch.StartNew();
                    var echo = await sender.ActorSelection(new RootActorPath(address) / "user" / "echo").ResolveOne(TimeSpan.FromSeconds(30));
                    await echo.Ask<string>("hello", TimeSpan.FromSeconds(30));
                    times.Add(clock.Elapsed.TotalMilliseconds);
                }
                finally
                {
                    await node.Terminate();
                }
            }
        }
        finally
        {
            await sender.Terminate();
        }
        return times;
    }

    /// <summary>Receives the round's weights like a node does (stream ref, length and checksum), then acknowledges.</summary>
    sealed class Sink : ReceiveActor
    {
        /// <summary>The vector back to the pool once it is here and checked; only its length is read after that.</summary>
        static async Task<float[]> Returned(Task<float[]> fetch)
        {
            var weights = await fetch.ConfigureAwait(false);
            WeightBuffers.Return(weights);
            return weights;
        }

        public Sink(WeightChannelClient fetcher, NetworkStream ack)
        {
            var materializer = Context.System.Materializer();
            Receive<RegisterAgain>(_ => Sender.Tell(new Registered("bench", 0)));
            Receive<TrainRound>(round =>
            {
                var replyTo = Sender;
                // a node's round, as ClientHost receives it: the weights land in a vector rented from WeightBuffers,
                // which goes back once nothing reads it (here at once; on a node when its clients are done with it)
                var received = round.Weights is ChanneledWeights c
                    ? Returned(fetcher.Fetch(c, replyTo.IsNobody() ? "127.0.0.1" : replyTo.Path.Address.Host!, WeightBuffers.Rent))
                    : WeightStream.Receive(round.Weights, materializer);
                if (replyTo.IsNobody())
                {
                    // one byte on the socket once the vector is here and checked; 0 if it is not
                    int expected = round.Weights.Header.Length;
                    received.ContinueWith(t => ack.WriteAsync(new[] { (byte)(t.IsCompletedSuccessfully && t.Result.Length == expected ? 1 : 0) }).AsTask(),
                        TaskScheduler.Default).Unwrap();
                    return;
                }
                received.PipeTo(replyTo, success: w => new Registered("bench", w.Length));
            });
        }
    }

    /// <summary>
    /// The anchor: the same bytes to as many loopback sockets at once, each receiver reading them into one buffer and
    /// answering one byte. With <c>sealed</c>, the bound any encryption of the bytes has here: the sender seals the
    /// vector once per round (AES-128-GCM, 256 KiB chunks, both cores) and every receiver opens each chunk as it lands,
    /// with none of TLS's per-connection sealing, 16 KB records or stream layers. With <c>tls</c>, each socket in a bare
    /// SslStream: the vector in one write, read as the plaintext receivers read it.
    /// </summary>
    sealed class RawTcp : IAsyncDisposable
    {
        const int Chunk = 256 * 1024, Tag = 16;
        readonly byte[] bytes;
        readonly byte[]? key;
        readonly byte[] wire;
        readonly List<TcpListener> listeners = [];
        readonly List<TcpClient> senders = [];
        readonly List<Stream> sendStreams = [];
        readonly List<Task> readers = [];
        readonly CancellationTokenSource stop = new();

        RawTcp(byte[] bytes, bool seal)
        {
            this.bytes = bytes;
            key = seal ? System.Security.Cryptography.RandomNumberGenerator.GetBytes(16) : null;
            wire = seal ? new byte[bytes.Length + Chunks * Tag] : bytes;
        }

        int Chunks => (bytes.Length + Chunk - 1) / Chunk;

        int round; // the sender's; each receiver counts its own. Nonces never repeat under the key: (round, chunk)

        static void Nonce(Span<byte> nonce, int round, int chunk)
        {
            nonce.Clear();
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(nonce, chunk);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(nonce[4..], round);
        }

        public static async Task<RawTcp> Start(byte[] bytes, int receivers, bool seal = false, TransportSecurity? tls = null)
        {
            var raw = new RawTcp(bytes, seal);
            for (int i = 0; i < receivers; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                raw.listeners.Add(listener);
                var client = new TcpClient { NoDelay = true };
                await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
                raw.senders.Add(client);
                var accepted = await listener.AcceptTcpClientAsync();
                Stream send = client.GetStream(), receive = accepted.GetStream();
                if (tls is not null) (send, receive) = await Secure(client, accepted, tls);
                raw.sendStreams.Add(send);
                raw.readers.Add(Task.Run(() => raw.Receive(accepted, receive)));
            }
            return raw;
        }

        async Task Receive(TcpClient accepted, Stream stream)
        {
            using var socket = accepted;
            await using var _ = stream;
            var buffer = new byte[bytes.Length];
            using var aead = key is null ? null : new System.Security.Cryptography.AesGcm(key, Tag);
            var sealedChunk = new byte[Chunk + Tag];
            var nonce = new byte[12];
            try
            {
                for (int received = 1; !stop.IsCancellationRequested; received++)
                {
                    if (aead is null) await stream.ReadExactlyAsync(buffer, stop.Token);
                    else
                        for (int c = 0, at = 0; at < buffer.Length; c++, at += Chunk)
                        {
                            int n = Math.Min(Chunk, buffer.Length - at);
                            await stream.ReadExactlyAsync(sealedChunk.AsMemory(0, n + Tag), stop.Token);
                            Nonce(nonce, received, c);
                            aead.Decrypt(nonce, sealedChunk.AsSpan(0, n), sealedChunk.AsSpan(n, Tag), buffer.AsSpan(at, n));
                        }
                    await stream.WriteAsync(new byte[] { 1 }, stop.Token);
                }
            }
            catch (Exception) when (stop.IsCancellationRequested) { }
        }

        /// <summary>Seals the vector into <see cref="wire"/>, its chunks over both cores, as a server would once per round.</summary>
        void Seal()
        {
            int r = ++round;
            Parallel.For(0, Chunks, () => new System.Security.Cryptography.AesGcm(key!, Tag), (c, _, aead) =>
            {
                Span<byte> nonce = stackalloc byte[12];
                Nonce(nonce, r, c);
                int at = c * Chunk, n = Math.Min(Chunk, bytes.Length - at), to = at + c * Tag;
                aead.Encrypt(nonce, bytes.AsSpan(at, n), wire.AsSpan(to, n), wire.AsSpan(to + n, Tag));
                return aead;
            }, aead => aead.Dispose());
        }

        public async Task Round()
        {
            if (key is not null) await Task.Run(Seal);
            await Task.WhenAll(sendStreams.Select(async stream =>
            {
                await stream.WriteAsync(wire);
                var ack = new byte[1];
                await stream.ReadExactlyAsync(ack);
            }));
        }

        public async ValueTask DisposeAsync()
        {
            stop.Cancel();
            foreach (var s in sendStreams) await s.DisposeAsync();
            foreach (var c in senders) c.Dispose();
            foreach (var l in listeners) l.Stop();
            try
            {
                await Task.WhenAll(readers);
            }
            catch (Exception) { } // the readers end with their sockets
        }
    }

    static double Median(int repeats, Action work)
    {
        // steady state, as in a run of many rounds: past the JIT's tier-0 code (30 calls) of the codec and XxHash
        for (int i = 0; i < 40; i++) work();
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            work();
            times.Add(clock.Elapsed.TotalSeconds);
        }
        return Middle(times);
    }

    /// <summary>
    /// Each of <paramref name="works"/> once to warm up, then <paramref name="repeats"/> passes over all of them in turn,
    /// so that load changing during the run weighs on each alike; the median seconds of each.
    /// </summary>
    static async Task<double[]> Alternate(int repeats, params Func<Task>[] works)
    {
        foreach (var work in works) await work();
        var times = works.Select(_ => new List<double>()).ToArray();
        for (int i = 0; i < repeats; i++)
            for (int w = 0; w < works.Length; w++)
            {
                var clock = Stopwatch.StartNew();
                await works[w]();
                times[w].Add(clock.Elapsed.TotalSeconds);
            }
        return times.Select(Middle).ToArray();
    }

    static async Task<double> MedianAsync(int repeats, Func<Task> work)
    {
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            await work();
            times.Add(clock.Elapsed.TotalSeconds);
        }
        return Middle(times);
    }

    static double Middle(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
