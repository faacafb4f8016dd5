using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using FedAvg.Actors.Hosting;
using FedAvg.Core;
using FedAvg.Core.Native;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Cli;

/// <summary>
/// `fedavg bench …`: the measurements behind docs/benchmarks.md. Each prints one JSON object per line so that
/// scripts/bench.sh can put them next to the PyTorch reference measured in the same run.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Measurements for docs/benchmarks.md (one JSON line per result).");
        bench.Subcommands.Add(Train());
        bench.Subcommands.Add(Aggregate());
        bench.Subcommands.Add(Evaluate());
        bench.Subcommands.Add(Wire());
        bench.Subcommands.Add(FirstRequests());
        return bench;
    }

    /// <summary>Weights on the wire: the codec against memcpy, and a broadcast over Akka.Remote against raw TCP.</summary>
    static Command Wire()
    {
        var model = CommonOptions.Model("mcmahan-cnn");
        var nodes = CommonOptions.Value("--nodes", 2, "Receiving actor systems (nodes) of the broadcast.");
        var repeats = CommonOptions.Value("--repeats", 9, "Repetitions; the median is reported.");
        var command = new Command("wire", "The weight codec (MB/s, against memcpy) and one round's broadcast to N nodes over loopback (against raw TCP).")
        {
            model, nodes, repeats,
        };
        command.SetAction(async (parse, cancel) =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string name = parse.GetValue(model)!;
            ModelZoo.Validate(name);
            Require.AtLeast(parse.GetValue(nodes), 1, "--nodes");
            Require.AtLeast(parse.GetValue(repeats), 1, "--repeats");
            using var m = ModelZoo.Create(name, 1);
            var weights = Weights.Read(m, WeightLayout.Of(m));
            var codec = FedAvg.Actors.Transfer.WireBenchmark.MeasureCodec(weights, parse.GetValue(repeats) * 3);
            Emit(new { bench = "wire-codec", model = name, megabytes = weights.Length * 4 / 1e6, encode_mb_s = codec.EncodeMBps,
                decode_mb_s = codec.DecodeMBps, memcpy_mb_s = codec.MemcpyMBps, xxhash3_mb_s = codec.HashMBps });
            var broadcast = await FedAvg.Actors.Transfer.WireBenchmark.MeasureBroadcast(weights, parse.GetValue(nodes), parse.GetValue(repeats));
            Emit(new { bench = "wire-broadcast", model = name, nodes = broadcast.Nodes, megabytes = broadcast.Megabytes,
                channel_seconds = broadcast.ChannelSeconds, akka_seconds = broadcast.AkkaSeconds, raw_tcp_seconds = broadcast.RawTcpSeconds,
                channel_mb_s = broadcast.Megabytes / broadcast.ChannelSeconds, akka_mb_s = broadcast.Megabytes / broadcast.AkkaSeconds,
                raw_tcp_mb_s = broadcast.Megabytes / broadcast.RawTcpSeconds, channel_vs_raw_tcp = broadcast.RawTcpSeconds / broadcast.ChannelSeconds,
                message_round_trip_ms = broadcast.MessageSeconds * 1000, fetch_only_mb_s = broadcast.Megabytes / broadcast.FetchSeconds,
                push_only_mb_s = broadcast.Megabytes / broadcast.PushSeconds, pushed_share = broadcast.PushedShare,
                akka_reply_seconds = broadcast.ChannelAkkaReplySeconds, akka_reply_vs_raw_tcp = broadcast.RawTcpSeconds / broadcast.ChannelAkkaReplySeconds });

            // the same broadcast with mutual TLS (a throwaway federation CA and certificate), rounds alternated with plaintext ones
            var dir = Directory.CreateTempSubdirectory("fedavg-bench-tls-");
            try
            {
                using var tls = ThrowawayTls(dir);
                var secure = await FedAvg.Actors.Transfer.WireBenchmark.MeasureBroadcastWithTls(weights, parse.GetValue(nodes), parse.GetValue(repeats), tls);
                double handshake = await FedAvg.Actors.Transfer.WireBenchmark.MeasureTlsHandshake(tls, parse.GetValue(repeats) * 3);
                Emit(new { bench = "wire-broadcast-tls", model = name, nodes = secure.Nodes, megabytes = secure.Megabytes,
                    plaintext_seconds = secure.PlaintextSeconds, tls_seconds = secure.TlsSeconds,
                    plaintext_mb_s = secure.Megabytes / secure.PlaintextSeconds, tls_mb_s = secure.Megabytes / secure.TlsSeconds,
                    tls_vs_plaintext = secure.PlaintextSeconds / secure.TlsSeconds, tls_handshake_ms = handshake * 1000,
                    stream_plaintext_mb_s = secure.Megabytes / secure.PlaintextStreamSeconds, stream_tls_mb_s = secure.Megabytes / secure.TlsStreamSeconds,
                    stream_tls_vs_plaintext = secure.PlaintextStreamSeconds / secure.TlsStreamSeconds,
                    plaintext_association_ms = secure.PlaintextAssociationSeconds * 1000, tls_association_ms = secure.TlsAssociationSeconds * 1000,
                    raw_tcp_mb_s = secure.Megabytes / secure.RawSeconds, sealed_raw_tcp_mb_s = secure.Megabytes / secure.SealedSeconds,
                    sealed_vs_raw_tcp = secure.RawSeconds / secure.SealedSeconds,
                    raw_tls_mb_s = secure.Megabytes / secure.RawTlsSeconds, raw_tls_vs_raw_tcp = secure.RawSeconds / secure.RawTlsSeconds });
            }
            finally
            {
                dir.Delete(recursive: true);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>A positive duration as HOCON writes one (1s, 500ms), or a usage error that names the option.</summary>
    static TimeSpan Interval(string text)
    {
        try
        {
            var t = Akka.Configuration.ConfigurationFactory.ParseString($"d = \"{text}\"").GetTimeSpan("d");
            if (t > TimeSpan.Zero) return t;
        }
        catch (Exception) // Akka's parser throws several types for text that is not a duration
        {
        }
        throw new UsageException($"--transport-heartbeats: '{text}' is not a positive duration (e.g. 1s, 500ms).");
    }

    /// <summary>A federation CA and a certificate signed by it, in <paramref name="dir"/>, for measuring TLS.</summary>
    static TransportSecurity ThrowawayTls(DirectoryInfo dir)
    {
        string caDir = Path.Combine(dir.FullName, "ca");
        FederationCertificates.Init(caDir, "bench", null, 2).Dispose();
        var now = DateTimeOffset.UtcNow;
        string pfx = FederationCertificates.Issue("bench", caDir, Path.Combine(dir.FullName, "node"), FederationCertificates.RoleClient, null, null, [],
            now.AddMinutes(-5), now.AddDays(1));
        return new TransportSecurity(TransportSecurity.LoadNodeCertificate(pfx, null, "none"),
            TransportSecurity.LoadCaCertificate(Path.Combine(caDir, FederationCertificates.CaCertificateFile), "--tls-ca"));
    }

    /// <summary>The first request to a node that has just started, many times, in plaintext and with mutual TLS.</summary>
    static Command FirstRequests()
    {
        var count = CommonOptions.Value("--count", 40, "New nodes (actor systems) asked once each, per transport.");
        var heartbeats = new Option<string>("--transport-heartbeats")
        {
            Description = "Akka.Remote transport heartbeat intervals to measure, comma-separated (default: cluster.conf's; Akka's own is 4s).",
        };
        var command = new Command("first-requests",
            "A first request to each of N new nodes over loopback (connect, handshakes, a reply), in plaintext and with mutual TLS: median, slowest, and how many took over 1 s.")
        {
            count, heartbeats,
        };
        command.SetAction(async (parse, cancel) =>
        {
            Require.AtLeast(parse.GetValue(count), 1, "--count");
            var configured = HoconFiles.Load(["simulation.conf", "cluster.conf"]).GetTimeSpan("akka.remote.transport-failure-detector.heartbeat-interval");
            var intervals = parse.GetValue(heartbeats) is { } text
                ? text.Split(',').Select(t => Interval(t.Trim())).ToList()
                : [configured];
            var dir = Directory.CreateTempSubdirectory("fedavg-bench-tls-");
            try
            {
                using var tls = ThrowawayTls(dir);
                foreach (var heartbeat in intervals)
                foreach (var (transport, security) in new[] { ("plaintext", (TransportSecurity?)null), ("tls", tls) })
                {
                    var ms = (await FedAvg.Actors.Transfer.WireBenchmark.MeasureFirstRequests(security, parse.GetValue(count), heartbeat)).Order().ToList();
                    Emit(new { bench = "first-requests", transport, count = ms.Count, transport_heartbeat_s = heartbeat.TotalSeconds,
                        configured = heartbeat == configured, median_ms = ms[ms.Count / 2], max_ms = ms[^1],
                        over_100ms = ms.Count(t => t > 100), over_1s = ms.Count(t => t > 1000) });
                }
            }
            finally
            {
                dir.Delete(recursive: true);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    static Command Train()
    {
        var dataDir = CommonOptions.DataDir();
        var model = CommonOptions.Model("seed002-cnn");
        var batch = CommonOptions.Value("--batch", 64, "Mini-batch size.");
        var trainers = CommonOptions.Value("--trainers", 1, "Trainings that run at once (P), each on its own data.");
        var threads = CommonOptions.Value("--threads-per-trainer", 1, "libtorch intra-op threads per trainer (T).");
        var samples = CommonOptions.Value("--samples", 60000, "Samples each trainer trains on per repetition (one epoch of this many).");
        var repeats = CommonOptions.Value("--repeats", 3, "Repetitions; the median is reported.");
        var command = new Command("train", "Local training throughput in samples/s (SGD lr 0.01, momentum 0.9) summed over P trainers.")
        {
            dataDir, model, batch, trainers, threads, samples, repeats,
        };
        command.SetAction(parse =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string name = parse.GetValue(model)!;
            ModelZoo.Validate(name);
            int p = parse.GetValue(trainers), t = parse.GetValue(threads), n = parse.GetValue(samples), r = parse.GetValue(repeats);
            TrainerPool.ValidateShape(p, t, Environment.ProcessorCount, "--trainers", "--threads-per-trainer");
            Require.AtLeast(r, 1, "--repeats");
            var config = new TrainConfig(1, parse.GetValue(batch), 0.01, 0.9);
            config.Validate();
            var (train, test) = new DatasetStore(parse.GetValue(dataDir)!).Load(DatasetCatalog.Mnist, standardize: true);
            using var _ = train;
            using var __ = test;
            Require.AtLeast(n, 1, "--samples");
            if (n > train.Count) throw new UsageException($"--samples {n} exceeds the {train.Count} training samples.");
            using var pool = new TrainerPool(name, p, t);
            using var initialModel = ModelZoo.Create(name, 1);
            var initial = Weights.Read(initialModel, WeightLayout.Of(initialModel));
            var shards = Enumerable.Range(0, p).Select(k => Enumerable.Range(0, n).Select(i => (i + k * 7919) % train.Count).ToArray()).ToArray();
            // warm-up: first-touch allocations and libtorch's lazy initialisation are not what we measure
            Task.WaitAll(shards.Select(s => pool.Train(initial, train, s[..Math.Min(s.Length, 2048)], config, 1)).ToArray());
            var rates = new List<double>();
            for (int i = 0; i < r; i++)
            {
                var clock = Stopwatch.StartNew();
                Task.WaitAll(shards.Select(s => pool.Train(initial, train, s, config, i)).ToArray());
                rates.Add(p * (double)n / clock.Elapsed.TotalSeconds);
            }
            Emit(new { bench = "train", model = name, batch = config.BatchSize, trainers = p, threads_per_trainer = t,
                samples_per_s = Median(rates), runs = rates, malloc_tuned = NativeTuning.MallocTuned,
                mkl_by_cpu_features = MklDispatch.ByCpuFeatures });
            return ExitCodes.Success;
        });
        return command;
    }

    static Command Aggregate()
    {
        var model = CommonOptions.Model("mcmahan-cnn");
        var updates = CommonOptions.Value("--updates", 100, "How many client updates to average.");
        var repeats = CommonOptions.Value("--repeats", 5, "Repetitions; the median is reported.");
        var command = new Command("aggregate", "FedAvg aggregation of N updates against a memory copy of the same bytes.")
        {
            model, updates, repeats,
        };
        command.SetAction(parse =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string name = parse.GetValue(model)!;
            int count = parse.GetValue(updates), r = parse.GetValue(repeats);
            Require.AtLeast(count, 1, "--updates");
            Require.AtLeast(r, 1, "--repeats");
            using var m = ModelZoo.Create(name, 1);
            int length = WeightLayout.Of(m).TotalLength;
            var rng = new Random(1);
            var list = Enumerable.Range(0, count).Select(k =>
            {
                var w = new float[length];
                for (int i = 0; i < length; i++) w[i] = (float)rng.NextDouble();
                return new ClientUpdate($"client-{k:D5}", w, 100 + k, 0, 0);
            }).ToList();
            var sink = new float[length];
            var aggregate = new List<double>();
            var copy = new List<double>();
            for (int i = 0; i <= r; i++)
            {
                var clock = Stopwatch.StartNew();
                var result = FedAvgStrategy.WeightedAverage(length, list);
                double a = clock.Elapsed.TotalSeconds;
                clock.Restart();
                // the anchor: read every byte of every update once and write one vector, as aggregation must
                foreach (var u in list) u.Weights.AsSpan().CopyTo(sink);
                double c = clock.Elapsed.TotalSeconds;
                if (i == 0) continue; // warm-up
                aggregate.Add(a);
                copy.Add(c);
                GC.KeepAlive(result);
            }
            double am = Median(aggregate), cm = Median(copy);
            Emit(new { bench = "aggregate", model = name, parameters = length, updates = count,
                aggregate_ms = am * 1000, copy_ms = cm * 1000, ratio = am / cm,
                gb_per_s = (double)count * length * 4 / am / 1e9 });
            return ExitCodes.Success;
        });
        return command;
    }

    static Command Evaluate()
    {
        var dataDir = CommonOptions.DataDir();
        var model = CommonOptions.Model("seed002-cnn");
        var batch = CommonOptions.Value("--batch", Evaluator.DefaultBatch, "Evaluation batch size.");
        var threads = CommonOptions.Value("--threads", 1, "libtorch intra-op threads.");
        var repeats = CommonOptions.Value("--repeats", 3, "Repetitions; the median is reported.");
        var command = new Command("evaluate", "Seconds to evaluate a model on the whole test set.") { dataDir, model, batch, threads, repeats };
        command.SetAction(parse =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string name = parse.GetValue(model)!;
            ModelZoo.Validate(name);
            NativeTuning.SetIntraOpThreads(parse.GetValue(threads));
            var (train, test) = new DatasetStore(parse.GetValue(dataDir)!).Load(DatasetCatalog.Mnist, standardize: true);
            using var _ = train;
            using var __ = test;
            using var m = ModelZoo.Create(name, 1);
            Evaluator.Evaluate(m, test, parse.GetValue(batch));
            var times = new List<double>();
            for (int i = 0; i < parse.GetValue(repeats); i++)
            {
                var clock = Stopwatch.StartNew();
                Evaluator.Evaluate(m, test, parse.GetValue(batch));
                times.Add(clock.Elapsed.TotalSeconds);
            }
            Emit(new { bench = "evaluate", model = name, batch = parse.GetValue(batch), threads = parse.GetValue(threads),
                seconds = Median(times), samples = test.Count });
            return ExitCodes.Success;
        });
        return command;
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int mid = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    static void Emit(object result) => Console.WriteLine(JsonSerializer.Serialize(result));
}
