using Akka.Actor;
using Akka.Streams;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core.Data;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

/// <summary>
/// A server and nodes as separate actor systems in this process, talking Akka.Remote over loopback TCP: the protocol,
/// the stream refs and membership end to end. (Process boundaries and SIGKILL are in FedAvg.Cli.Tests.)
/// </summary>
public class ClusterTests
{
    static SimulationOptions Small(int rounds = 2) =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: $$"""
            fedavg { model = seed001-2nn, clients = 4, partition = "iid:300", rounds = {{rounds}}, fraction = 1.0,
                     local-epochs = 1, batch = 32, lr = 0.05, momentum = 0.5, seed = 5,
                     trainers = 1, threads-per-trainer = 1, round-timeout = 2m }
            """));

    static Akka.Configuration.Config Layered => HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: "fedavg.cluster.leave-timeout = 10s");
    static ClusterOptions Settings => ClusterOptions.FromConfig(Layered);
    static DatasetStore Store => new(TestData.DataDir);
    static readonly Endpoint Loopback = new("127.0.0.1", null, 0);

    /// <summary>A server running <paramref name="options"/> on a loopback port the OS picks: its run, and that port once it listens.</summary>
    static async Task<(Task<SimulationResult> Run, int Port)> StartServer(SimulationOptions options, int startClients, int testSamples,
        Action<string>? onEvent = null, Action<ActorSystem>? onSystem = null, ClusterOptions? cluster = null)
    {
        var listening = new TaskCompletionSource<Address>(TaskCreationOptions.RunContinuationsAsynchronously);
        var run = new ClusterServer { TestSamples = testSamples, StartClients = startClients, OnListening = a => listening.TrySetResult(a), OnEvent = onEvent, OnSystem = onSystem }
            .RunAsync(options, cluster ?? Settings, Loopback, Layered, Store);
        return (run, (await listening.Task.WaitAsync(TimeSpan.FromSeconds(60))).Port!.Value);
    }

    /// <summary><paramref name="node"/> joining the server at <paramref name="port"/> with clients <paramref name="first"/>–<paramref name="last"/>, one trainer of one thread.</summary>
    static Task<FedAvg.Actors.Client.NodeRunFinished> Join(ClusterNode node, string nodeId, int port, int first, int last, CancellationToken cancel = default) =>
        node.RunAsync(new NodeOptions(nodeId, "127.0.0.1", port, new ClientRange(first, last), null, TestData.DataDir, 1, 1),
            Settings, Loopback, Layered, cancel);

    /// <summary>The server's run, once it and every node have completed (within 3 minutes, and 30 s after it).</summary>
    static async Task<SimulationResult> Completed(Task<SimulationResult> server, params Task<FedAvg.Actors.Client.NodeRunFinished>[] nodes)
    {
        var result = await server.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(result.Completed, result.FailureReason);
        foreach (var node in nodes) Assert.True((await node.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
        return result;
    }

    [Fact]
    public async Task A_server_and_two_nodes_over_loopback_give_the_same_bits_as_the_simulation()
    {
        var options = Small();
        var simulated = await new Simulation { TestSamples = 500 }.RunAsync(options, HoconFiles.Load("simulation.conf"), Store);

        var (server, port) = await StartServer(options, startClients: 4, testSamples: 500);
        using var nodeA = new ClusterNode();
        using var nodeB = new ClusterNode();
        var a = Join(nodeA, "node-a", port, 0, 1);
        var b = Join(nodeB, "node-b", port, 2, 3);

        var result = await Completed(server, a, b);
        Assert.Equal(simulated.FinalWeights, result.FinalWeights);
        Assert.Equal(simulated.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss, r.Succeeded)),
                     result.Rounds.Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss, r.Succeeded)));
    }

    /// <summary>An IDX pair of the first <paramref name="count"/> MNIST training images from <paramref name="offset"/>: a node's own data.</summary>
    static string OwnData(int offset, int count)
    {
        string dir = TestData.TempDir();
        var images = File.ReadAllBytes(TestData.MnistFile("train-images-idx3-ubyte"));
        var labels = File.ReadAllBytes(TestData.MnistFile("train-labels-idx1-ubyte"));
        byte[] Slice(byte[] idx, int header, int itemBytes)
        {
            var part = new byte[header + count * itemBytes];
            idx.AsSpan(0, header).CopyTo(part);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(part.AsSpan(4), count);
            idx.AsSpan(header + offset * itemBytes, count * itemBytes).CopyTo(part.AsSpan(header));
            return part;
        }
        File.WriteAllBytes(Path.Combine(dir, "train-images-idx3-ubyte"), Slice(images, 16, 28 * 28));
        File.WriteAllBytes(Path.Combine(dir, "train-labels-idx1-ubyte"), Slice(labels, 8, 1));
        return dir;
    }

    [Fact]
    public async Task Nodes_with_their_own_data_are_one_client_each_and_only_their_sample_count_and_weights_reach_the_server()
    {
        var options = Small(rounds: 2);
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (server, port) = await StartServer(options, startClients: 2, testSamples: 500, events.Enqueue);
        using var hospital = new ClusterNode();
        using var clinic = new ClusterNode();
        var a = hospital.RunAsync(new NodeOptions("hospital", "127.0.0.1", port, null, OwnData(0, 400), TestData.DataDir, 1, 1), Settings, Loopback, Layered);
        var b = clinic.RunAsync(new NodeOptions("clinic", "127.0.0.1", port, null, OwnData(400, 250), TestData.DataDir, 1, 1), Settings, Loopback, Layered);

        var result = await Completed(server, a, b);
        Assert.All(result.Rounds, r => Assert.Equal((2, 2), (r.Sampled, r.Succeeded)));
        Assert.True(result.Rounds[^1].TestAccuracy > 0.3, $"accuracy {result.Rounds[^1].TestAccuracy} (untrained: about 0.1)");
        Assert.Contains(events, e => e.Contains("node hospital joined") && e.Contains("own data (400 samples)"));
        Assert.Contains(events, e => e.Contains("node clinic registered 1 clients"));
    }

    [Fact]
    public async Task A_node_with_thousands_of_clients_registers_and_trains_them_in_messages_that_fit_the_frame()
    {
        // 2,100 clients: 9 registration batches and 2 TrainRounds, each far below Akka.Remote's 128,000-byte frame
        // (a message above it would be dropped with only a log line, and the round would wait for its deadline)
        int clients = FedAvg.Actors.Server.FederationServer.TasksPerMessage + 100;
        var options = SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: $$"""
            fedavg { model = seed000-cnn, clients = {{clients}}, partition = "iid:5", rounds = 1, fraction = 1.0,
                     local-epochs = 1, batch = 5, lr = 0.05, seed = 5, trainers = 1, threads-per-trainer = 1, round-timeout = 5m }
            """));
        var (server, port) = await StartServer(options, startClients: clients, testSamples: 200);
        using var node = new ClusterNode();
        var run = Join(node, "big", port, 0, clients - 1);
        var result = await server.WaitAsync(TimeSpan.FromMinutes(4));
        Assert.True(result.Completed, result.FailureReason);
        Assert.Equal((clients, clients, 1), (result.Rounds[0].Sampled, result.Rounds[0].Succeeded, result.Rounds[0].Attempts));
        Assert.True(result.Rounds[0].RoundSeconds < 120, $"{result.Rounds[0].RoundSeconds} s: did a message go missing until the deadline?");
        Assert.True((await run.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
    }

    /// <summary>Every message of the event stream it is subscribed to that satisfies a test, as a task.</summary>
    sealed class Listener : ReceiveActor
    {
        public Listener(Func<object, bool> match, TaskCompletionSource<string> found) =>
            ReceiveAny(m => { if (match(m)) found.TrySetResult(m.ToString()!); });
    }

    sealed class Inbox : ReceiveActor
    {
        public Inbox(System.Collections.Concurrent.ConcurrentQueue<object> got) => ReceiveAny(got.Enqueue);
    }

    /// <summary>
    /// Akka.Remote takes a message's sender from the message, so any actor system that reaches a node can send it a
    /// TrainRound. Before sessions, the node's clients trained on that system's weights and sent it their updates (a
    /// gradient-inversion attacker's wish). Over real loopback TCP: the node drops it with the reason, its clients train
    /// only the coordinator's rounds, and the run ends with the simulation's bits.
    /// </summary>
    [Fact]
    public async Task A_train_round_from_an_actor_system_that_is_not_the_coordinator_trains_nothing_and_the_run_keeps_its_bits()
    {
        var options = Small();
        var simulated = await new Simulation { TestSamples = 500 }.RunAsync(options, HoconFiles.Load("simulation.conf"), Store);
        var (server, port) = await StartServer(options, startClients: 4, testSamples: 500);

        var intruder = OverTheWire.Create("intruder");
        try
        {
            var got = new System.Collections.Concurrent.ConcurrentQueue<object>();
            var inbox = intruder.ActorOf(Props.Create(() => new Inbox(got)), "inbox");
            var dropped = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            Address? nodeAddress = null;
            using var node = new ClusterNode
            {
                OnUp = a => nodeAddress = a,
                OnSystem = system => system.EventStream.Subscribe(system.ActorOf(Props.Create(() => new Listener(IsDropped, dropped))),
                    typeof(Akka.Event.Warning)),
                OnEvent = line =>
                {
                    if (!line.Contains("clients registered with the server")) return;
                    // As the coordinator sends them: a stream ref of the weights, since a 0.8 MB message would
                    // exceed the frame and be dropped by the intruder's own transport before it left.
                    var (length, hash) = LayoutOf(options);
                    var encoded = Transfer.WeightStream.Encode(new float[length], hash, 1, "", 0);
                    _ = Transfer.WeightStream.Stream(encoded, intruder.Materializer()).ContinueWith(payload =>
                        intruder.ActorSelection(new RootActorPath(nodeAddress!) / "user" / ClusterHosting.NodeAgentName).Tell(
                            new TrainRound(1, 1, [new ClientTask(ClientIds.Of(0, 4), 1), new ClientTask(ClientIds.Of(1, 4), 2)],
                                Core.Strategies.RoundConfig.From(new Core.Training.TrainConfig(1, 32, 0.05)), payload.Result), inbox),
                        TaskContinuationOptions.OnlyOnRanToCompletion);
                },
            };
            var run = Join(node, "node-a", port, 0, 3);

            Assert.Contains($"ignoring a TrainRound from akka.tcp://intruder@", await dropped.Task.WaitAsync(TimeSpan.FromMinutes(2)));
            var result = await server.WaitAsync(TimeSpan.FromMinutes(3));
            Assert.True(result.Completed, result.FailureReason);
            Assert.True((await run.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
            Assert.Equal(simulated.FinalWeights, result.FinalWeights);
            Assert.Empty(got); // no update, no failure: the node's clients never answered the intruder
        }
        finally
        {
            await intruder.Terminate();
        }
    }

    /// <summary>Says when it starts: the coordinator singleton handed to a member that is not the run's server.</summary>
    sealed class Started : ReceiveActor
    {
        public Started(TaskCompletionSource started)
        {
            started.TrySetResult();
            ReceiveAny(_ => { });
        }
    }

    /// <summary>
    /// A member of role `server` that is none of the server's standbys, joined to the server at <paramref name="port"/>
    /// and up, with a coordinator singleton manager as `fedavg server` has: <c>Started</c> completes if the singleton
    /// ever starts there.
    /// </summary>
    static async Task<(ActorSystem Stray, Task Started)> StartStray(int port)
    {
        var stray = ClusterHosting.Start(ClusterHosting.Configure(Layered, Loopback, ClusterHosting.ServerRole), Loopback);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        stray.ActorOf(Akka.Cluster.Tools.Singleton.ClusterSingletonManager.Props(Props.Create(() => new Started(started)), PoisonPill.Instance,
            Akka.Cluster.Tools.Singleton.ClusterSingletonManagerSettings.Create(stray).WithRole(ClusterHosting.ServerRole)), ClusterHosting.CoordinatorName);
        Akka.Cluster.Cluster.Get(stray).Join(new Address("akka.tcp", ClusterHosting.SystemName, "127.0.0.1", port));
        if (!await ClusterHosting.WaitUntilUp(stray, TimeSpan.FromSeconds(30), default))
        {
            await stray.Terminate();
            Assert.Fail("the stray member did not come up");
        }
        return (stray, started.Task);
    }

    /// <summary>
    /// A member of role `server` that is none of the run's standbys (a standby whose join went unanswered, or a member
    /// that gave itself the role) is a candidate for the coordinator singleton. Before, once the run ended and the
    /// server left, the singleton was handed to it, and it started a coordinator of its own. Now the server downs it
    /// before it leaves: the member's system ends, and the singleton never starts there.
    /// </summary>
    [Fact]
    public async Task A_server_member_that_is_no_standby_is_downed_at_the_end_and_never_handed_the_coordinator()
    {
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        // a join-timeout longer than the run: the stray is still there at its end (the test below has it downed before)
        var (server, port) = await StartServer(Small(rounds: 1), startClients: 4, testSamples: 500, events.Enqueue,
            cluster: Settings with { JoinTimeout = TimeSpan.FromMinutes(10) });
        var (stray, started) = await StartStray(port);
        try
        {

            using var node = new ClusterNode();
            await Completed(server, Join(node, "node-a", port, 0, 3));
            var first = await Task.WhenAny(stray.WhenTerminated, started).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(first == stray.WhenTerminated && !started.IsCompleted, "the coordinator singleton started on the stray member");
            var strayAddress = Akka.Cluster.Cluster.Get(stray).SelfAddress;
            Assert.Contains(events, e => e.StartsWith($"downed the server member at {strayAddress}: still in the cluster 10 s after the run ended"));
        }
        finally
        {
            await stray.Terminate();
        }
    }

    /// <summary>
    /// The same stray member mid-run: if the server were lost while it is there, the singleton could be handed to it.
    /// The server downs a `server` member that its feed has not accepted as a standby within the join-timeout (3 s here)
    /// of its coming up, while it waits for its clients; the run then goes on with a node, and no coordinator ever
    /// starts on the stray.
    /// </summary>
    [Fact]
    public async Task A_server_member_that_is_no_standby_is_downed_mid_run_after_the_join_timeout()
    {
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (server, port) = await StartServer(Small(rounds: 1), startClients: 4, testSamples: 500, events.Enqueue,
            cluster: Settings with { JoinTimeout = TimeSpan.FromSeconds(3) });
        var (stray, started) = await StartStray(port);
        try
        {
            var strayAddress = Akka.Cluster.Cluster.Get(stray).SelfAddress;

            // downed before any node is there: the server is still waiting for its 4 clients
            await stray.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.False(started.IsCompleted, "the coordinator singleton started on the stray member");
            Assert.Contains(events, e => e.StartsWith($"downed the server member at {strayAddress}: it was not accepted as a standby within 3s (fedavg.cluster.join-timeout)"));

            using var node = new ClusterNode();
            var result = await Completed(server, Join(node, "node-a", port, 0, 3));
            Assert.Equal((4, 4), (result.Rounds.Single().Sampled, result.Rounds.Single().Succeeded));
        }
        finally
        {
            await stray.Terminate();
        }
    }

    /// <summary>
    /// A node id belongs to one live member. Before, a second node started with a live node's --node-id (a typo, or a
    /// member posing as it) took its clients, and the first node waited for rounds that never came. Now the second is
    /// not answered while the first is up and reachable; the first trains every round and the run keeps its bits.
    /// </summary>
    [Fact]
    public async Task A_second_node_under_a_live_nodes_id_is_held_back_and_the_live_node_keeps_its_clients()
    {
        var options = Small();
        var simulated = await new Simulation { TestSamples = 500 }.RunAsync(options, HoconFiles.Load("simulation.conf"), Store);
        var held = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var (server, port) = await StartServer(options, startClients: 4, testSamples: 500, onSystem: system =>
            system.EventStream.Subscribe(system.ActorOf(Props.Create(() => new Listener(IsHeldBack, held))), typeof(Akka.Event.Warning)));

        var registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var honestLines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var secondLines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var honest = new ClusterNode
        {
            OnEvent = line => { honestLines.Enqueue(line); if (line.Contains("clients registered with the server")) registered.TrySetResult(); },
        };
        using var second = new ClusterNode { OnEvent = secondLines.Enqueue };
        using var nodeB = new ClusterNode();
        using var stopSecond = new CancellationTokenSource();
        var a = Join(honest, "node-a", port, 0, 1);
        Task<FedAvg.Actors.Client.NodeRunFinished>? duplicate = null;
        try
        {
            await registered.Task.WaitAsync(TimeSpan.FromMinutes(2)); // the run waits for 4 clients: node-b is not there yet
            duplicate = Join(second, "node-a", port, 0, 1, stopSecond.Token);
            Assert.Contains("is up and reachable", await held.Task.WaitAsync(TimeSpan.FromMinutes(2)));
            var b = Join(nodeB, "node-b", port, 2, 3);

            var result = await Completed(server, a, b);
            Assert.Equal(simulated.FinalWeights, result.FinalWeights);
            Assert.All(result.Rounds, r => Assert.Equal((4, 4), (r.Sampled, r.Succeeded)));
            Assert.Contains(honestLines, l => l.StartsWith($"round {options.Rounds}: training 2 clients"));
            Assert.DoesNotContain(secondLines, l => l.Contains("joined federation"));
            // the node held back says why, once (it asks every 2 s), and keeps asking: it is admitted once the first is gone
            Assert.Single(secondLines, l => l.StartsWith("the server holds this node's join back: node node-a at akka.tcp://") && l.Contains("is up and reachable"));
        }
        finally
        {
            stopSecond.Cancel();
            // a cancelled node leaves the cluster, and may say so by throwing: that must not hide the test's own failure
            if (duplicate is not null)
                try { await duplicate.WaitAsync(TimeSpan.FromSeconds(60)); }
                catch (OperationCanceledException) { }
                catch (NodeRefusedException e) when (e.Message.Contains("held this node's join back")) { } // past its --join-timeout
        }
    }

    static bool IsHeldBack(object m) => m is Akka.Event.Warning w && $"{w.Message}".Contains("not admitting node node-a");

    static bool IsDropped(object m) => m is Akka.Event.Warning w && $"{w.Message}".Contains("ignoring a TrainRound");

    static (int Length, ulong Hash) LayoutOf(SimulationOptions options)
    {
        using var model = Core.Models.ModelZoo.Create(options.Model, 1);
        var layout = Core.Models.WeightLayout.Of(model);
        return (layout.TotalLength, layout.Hash);
    }

    [Fact]
    public async Task A_node_loads_and_prepares_its_clients_on_a_thread_of_its_own_not_on_the_pool_its_actors_run_on()
    {
        // Preparing loads the dataset (the checksums of its files, 55 MB for MNIST, then the tensors), partitions it and
        // starts the trainers: seconds of disk and CPU, after the node has joined and while its actors run. The faults
        // hook is called at its end, on the thread that did the work.
        var options = Small(rounds: 1);
        var (server, port) = await StartServer(options, startClients: 4, testSamples: 200);
        var preparing = new PreparingThread();
        using var node = new ClusterNode { Faults = preparing };
        var run = Join(node, "node-a", port, 0, 3);
        var result = await server.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.True(result.Completed, result.FailureReason);
        Assert.True((await run.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
        Assert.False(preparing.OnPool ?? throw new InvalidOperationException("the node never prepared its clients"),
            "the node prepared its clients on a thread of the pool that its actors (the default dispatcher) run on");
    }

    [Fact]
    public async Task A_node_whose_console_blocks_trains_on_and_its_lines_come_in_order_once_the_console_takes_them()
    {
        // a full pipe nobody reads, or a terminal paused with Ctrl-S: every write of a line waits until released
        var options = Small(rounds: 2);
        var (server, port) = await StartServer(options, startClients: 4, testSamples: 200);
        using var console = new ManualResetEventSlim(false);
        var written = new System.Collections.Concurrent.ConcurrentQueue<(string Line, bool OnPool)>();
        using var node = new ClusterNode
        {
            OnEvent = line =>
            {
                console.Wait(TimeSpan.FromMinutes(4));
                written.Enqueue((line, Thread.CurrentThread.IsThreadPoolThread));
            },
        };
        var run = Join(node, "node-a", port, 0, 3);
        var result = await server.WaitAsync(TimeSpan.FromMinutes(3)); // the rounds ran while the console took nothing
        Assert.True(result.Completed, result.FailureReason);
        Assert.Equal(2, result.Rounds.Count);
        Assert.Empty(written);
        console.Set();
        Assert.True((await run.WaitAsync(TimeSpan.FromSeconds(30))).Completed);
        var lines = written.Select(w => w.Line).ToList();
        Assert.DoesNotContain(written, w => w.OnPool);
        int joined = lines.FindIndex(l => l.StartsWith("joined the cluster")), first = lines.FindIndex(l => l.StartsWith("round 1:")),
            second = lines.FindIndex(l => l.StartsWith("round 2:")), over = lines.FindIndex(l => l.StartsWith("the run is over"));
        Assert.True(0 <= joined && joined < first && first < second && second < over, string.Join("\n", lines));
    }

    /// <summary>Changes nothing; records whether the node prepared its clients on a thread-pool thread.</summary>
    sealed class PreparingThread : FedAvg.Actors.Faults.IClientFaults
    {
        public bool? OnPool { get; private set; }

        public FedAvg.Actors.Client.PreparedClients Apply(FedAvg.Actors.Client.PreparedClients clients, Action<FaultFired> fired)
        {
            OnPool = Thread.CurrentThread.IsThreadPoolThread;
            return clients;
        }
    }

    [Fact]
    public void Cluster_settings_come_from_cluster_conf_then_the_environment_and_bad_values_name_their_key()
    {
        var shipped = ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"]));
        Assert.Equal(("fedavg", TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(10)),
            (shipped.Federation, shipped.JoinTimeout, shipped.ServerWait, shipped.WaitForClients));
        var environment = new Dictionary<string, string> { ["FEDAVG_FEDERATION"] = "hospitals", ["FEDAVG_JOIN_TIMEOUT"] = "5s" };
        string overrides = ClusterEnvironment.Overrides(v => environment.GetValueOrDefault(v));
        var set = ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: overrides));
        Assert.Equal(("hospitals", TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5)), (set.Federation, set.JoinTimeout, set.ServerWait));
        var bad = Assert.Throws<FedAvg.Core.UsageException>(() =>
            ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: "fedavg.cluster.server-wait = -1s")));
        Assert.Contains("fedavg.cluster.server-wait", bad.Message);
        Assert.Contains("fedavg.cluster.leave-timout is not a setting", Assert.Throws<FedAvg.Core.UsageException>(() =>
            ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: "fedavg.cluster.leave-timout = 1s"))).Message);

        // a bad value names where it came from: the environment variable, or the flag the command notes over it
        var unset = new Dictionary<string, string> { ["FEDAVG_JOIN_TIMEOUT"] = "soon", ["FEDAVG_SERVER_WAIT"] = "0s", ["FEDAVG_FEDERATION"] = "x" };
        var given = ClusterEnvironment.Given(v => unset.GetValueOrDefault(v));
        Assert.Equal(new Dictionary<string, string> { ["join-timeout"] = "$FEDAVG_JOIN_TIMEOUT", ["server-wait"] = "$FEDAVG_SERVER_WAIT", ["federation"] = "$FEDAVG_FEDERATION" }, given);
        var fromEnvironment = HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: ClusterEnvironment.Overrides(v => unset.GetValueOrDefault(v)));
        Assert.Equal("$FEDAVG_JOIN_TIMEOUT: 'soon' is not a valid value (not a duration such as 30s or 10m).",
            Assert.Throws<FedAvg.Core.UsageException>(() => ClusterOptions.FromConfig(fromEnvironment, given)).Message);
        given["join-timeout"] = "--join-timeout";
        Assert.StartsWith("--join-timeout: 'soon'", Assert.Throws<FedAvg.Core.UsageException>(() => ClusterOptions.FromConfig(fromEnvironment, given)).Message);
        unset["FEDAVG_JOIN_TIMEOUT"] = "1s";
        Assert.Equal("$FEDAVG_SERVER_WAIT must be a positive duration such as 30s or 10m, got '0s'.", Assert.Throws<FedAvg.Core.UsageException>(() =>
            ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: ClusterEnvironment.Overrides(v => unset.GetValueOrDefault(v))), given)).Message);
        // how often a removed server goes on by itself: a count, 0 allowed
        Assert.Equal(3, shipped.ServerRestarts);
        foreach (var (value, expected) in new[] { ("0", (int?)0), ("12", 12) })
            Assert.Equal(expected, ClusterOptions.FromConfig(HoconFiles.Load(["simulation.conf", "cluster.conf"],
                overrides: ClusterEnvironment.Overrides(v => v == "FEDAVG_SERVER_RESTARTS" ? value : null))).ServerRestarts);
        foreach (var (value, message) in new[] { ("-1", "$FEDAVG_SERVER_RESTARTS must be 0 or more, got -1."),
                     ("2.5", "$FEDAVG_SERVER_RESTARTS: '2.5' is not a valid value (not a whole number such as 3)."),
                     ("many", "$FEDAVG_SERVER_RESTARTS: 'many' is not a valid value (not a whole number such as 3).") })
        {
            string? Variable(string v) => v == "FEDAVG_SERVER_RESTARTS" ? value : null;
            Assert.Equal(message, Assert.Throws<FedAvg.Core.UsageException>(() => ClusterOptions.FromConfig(
                HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: ClusterEnvironment.Overrides(Variable)), ClusterEnvironment.Given(Variable))).Message);
        }
        // the waits a node and a standby print are written as a user writes them (HoconText.Duration)
        Assert.Equal(("30s", "1500ms", "10m", "90s"), (HoconText.Duration(TimeSpan.FromSeconds(30)), HoconText.Duration(TimeSpan.FromMilliseconds(1500)),
            HoconText.Duration(TimeSpan.FromMinutes(10)), HoconText.Duration(TimeSpan.FromSeconds(90))));
    }
}
