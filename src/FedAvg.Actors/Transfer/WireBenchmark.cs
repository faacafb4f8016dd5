using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Streams;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Strategies;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// The measurements behind docs/benchmarks.md's "Across machines" figures, each next to its anchor in the same run:
/// the weight codec against a plain memory copy, and a broadcast over Akka.Remote against raw TCP on loopback.
/// </summary>
public static class WireBenchmark
{
    public sealed record Codec(double EncodeMBps, double DecodeMBps, double MemcpyMBps);

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
        return new Codec(mb / encode, mb / decode, mb / memcpy);
    }

    public sealed record Broadcast(int Nodes, double Megabytes, double AkkaSeconds, double RawTcpSeconds);

    /// <summary>
    /// One round's broadcast: the same vector to <paramref name="nodes"/> actor systems over loopback TCP as stream
    /// refs, each receiver checking length and checksum, until every node has it; against raw TCP sockets moving the
    /// same bytes to as many receivers at once. Medians of <paramref name="repeats"/> after one warm-up each.
    /// </summary>
    public static async Task<Broadcast> MeasureBroadcast(float[] weights, int nodes, int repeats)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.loglevel = WARNING
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", public-hostname = "127.0.0.1", port = 0 }
            """).WithFallback(HoconFiles.Load(["simulation.conf", "cluster.conf"]));
        var sender = ActorSystem.Create("bench-sender", config);
        var receivers = Enumerable.Range(0, nodes).Select(i => ActorSystem.Create($"bench-node-{i}", config)).ToList();
        try
        {
            var sinks = new List<IActorRef>();
            foreach (var system in receivers)
            {
                system.ActorOf(Props.Create(() => new Sink()), "sink");
                var address = ((ExtendedActorSystem)system).Provider.DefaultAddress;
                sinks.Add(await sender.ActorSelection(new RootActorPath(address) / "user" / "sink").ResolveOne(TimeSpan.FromSeconds(10)));
            }
            var materializer = sender.Materializer();
            async Task Round()
            {
                var encoded = WeightStream.Encode(weights, 0x1234, 1, "", 0); // once per round, as the server does
                var acks = sinks.Select(async sink =>
                {
                    var payload = await WeightStream.Stream(encoded, materializer);
                    var ack = await sink.Ask<Registered>(new TrainRound(1, 1, [], RoundConfig.Of(("epochs", 1)), payload), TimeSpan.FromMinutes(1));
                    if (ack.Clients != weights.Length) throw new InvalidOperationException($"a node received {ack.Clients} weights");
                });
                await Task.WhenAll(acks);
            }
            await Round();
            var akka = await MedianAsync(repeats, Round);
            var raw = await RawTcp(MemoryMarshal.AsBytes(weights.AsSpan()).ToArray(), nodes, repeats);
            return new Broadcast(nodes, weights.Length * 4.0 * nodes / 1e6, akka, raw);
        }
        finally
        {
            await Task.WhenAll(receivers.Select(r => r.Terminate()).Append(sender.Terminate()));
        }
    }

    /// <summary>Receives the round's weights like a node does (stream ref, length and checksum), then acknowledges.</summary>
    sealed class Sink : ReceiveActor
    {
        public Sink()
        {
            var materializer = Context.System.Materializer();
            Receive<TrainRound>(round =>
            {
                var replyTo = Sender;
                WeightStream.Receive(round.Weights, materializer).PipeTo(replyTo, success: w => new Registered("bench", w.Length));
            });
        }
    }

    /// <summary>The same bytes to <paramref name="receivers"/> loopback sockets at once, each acknowledging with one byte.</summary>
    static async Task<double> RawTcp(byte[] bytes, int receivers, int repeats)
    {
        var listeners = Enumerable.Range(0, receivers).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        foreach (var l in listeners) l.Start();
        var senders = new List<TcpClient>();
        var readers = new List<Task>();
        using var stop = new CancellationTokenSource();
        try
        {
            foreach (var l in listeners)
            {
                var client = new TcpClient { NoDelay = true };
                await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)l.LocalEndpoint).Port);
                senders.Add(client);
                var accepted = await l.AcceptTcpClientAsync();
                readers.Add(Task.Run(async () =>
                {
                    using var socket = accepted;
                    var stream = socket.GetStream();
                    var buffer = new byte[bytes.Length];
                    while (!stop.IsCancellationRequested)
                    {
                        await stream.ReadExactlyAsync(buffer, stop.Token);
                        await stream.WriteAsync(new byte[] { 1 }, stop.Token);
                    }
                }));
            }
            async Task Round() => await Task.WhenAll(senders.Select(async c =>
            {
                var stream = c.GetStream();
                await stream.WriteAsync(bytes);
                var ack = new byte[1];
                await stream.ReadExactlyAsync(ack);
            }));
            await Round();
            return await MedianAsync(repeats, Round);
        }
        finally
        {
            stop.Cancel();
            foreach (var c in senders) c.Dispose();
            foreach (var l in listeners) l.Stop();
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
