using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using FedAvg.Actors.Client;
using FedAvg.Actors.Faults;
using FedAvg.Actors.Messages;
using Akka.Event;
using FedAvg.Actors.Transfer;
using FedAvg.Core;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>What a `fedavg node` offers and with what it trains.</summary>
/// <param name="Clients">Research mode: the run's client ids it hosts (their shards are computed from the run's spec).</param>
/// <param name="OwnDataDir">Own-data mode: a folder with the node's IDX files, which form one client.</param>
/// <param name="Model">The model this node is built for; null: the run's. A different one is refused at registration.</param>
/// <param name="AlsoJoin">Other members of the server's cluster to join through (its standby servers): after a takeover
/// the server at <paramref name="ServerHost"/> is gone, and a node that starts or joins again finds the cluster there.</param>
public sealed record NodeOptions(
    string NodeId, string ServerHost, int ServerPort, ClientRange? Clients, string? OwnDataDir, string DataDir,
    int Trainers, int ThreadsPerTrainer, string? Model = null, IReadOnlyList<(string Host, int Port)>? AlsoJoin = null)
{
    /// <summary>What this node joins, as the user gave it: HOST:PORT, then each standby's.</summary>
    public string JoinText => string.Join(",", new[] { (ServerHost, ServerPort) }.Concat(AlsoJoin ?? []).Select(a => $"{a.Item1}:{a.Item2}"));
}

/// <summary>
/// `fedavg node`: a cluster node with the `client` role that hosts client actors under a <see cref="ClientHost"/>.
/// Its data, shards and trainers outlive the actor system: when the server is lost and no standby took over (the split
/// brain resolver downs the server, or this side), the node joins again with a new actor system, for up to
/// `server-wait`, and its clients register again. After a standby's takeover nothing restarts: the new coordinator
/// asks the node to register again.
/// </summary>
public sealed class ClusterNode : IDisposable
{
    /// <summary>Called with each actor system of this node once it is up (node-level fault injection in tests: FedAvg.Actors.Testing's NodeFaults).</summary>
    public Action<ActorSystem>? OnSystem { get; init; }

    /// <summary>Faults injected into this node's clients, on top of `fedavg.faults` (the kit's way in, as <see cref="Simulation.Faults"/>).</summary>
    public IClientFaults? Faults { get; init; }

    IReadOnlyList<FaultRule> faultRules = [];

    /// <summary>
    /// Progress lines for the console ("joined", "registered 50 clients", "lost the server, joining again"), called in
    /// order on a thread of their own (<see cref="LineSink"/>), never on an actor's.
    /// </summary>
    public Action<string>? OnEvent { get; init; }

    LineSink? lines;

    void Say(string text) => lines?.Write(text);

    /// <summary>Called when each actor system of this node is up, with its address.</summary>
    public Action<Address>? OnUp { get; init; }

    /// <summary>Mutual TLS for the transport (null: plaintext, which the command allows on loopback or with --insecure).</summary>
    public TransportSecurity? Tls { get; init; }

    NodeData? data;
    TrainerPool? pool;
    (string Model, ulong Hash)? layout;

    public async Task<NodeRunFinished> RunAsync(NodeOptions options, ClusterOptions cluster, Endpoint endpoint, Config layered,
        CancellationToken cancel = default)
    {
        using var sink = OnEvent is null ? null : new LineSink(OnEvent, "fedavg node lines");
        lines = sink;
        try
        {
            return await Run(options, cluster, endpoint, layered, cancel).ConfigureAwait(false);
        }
        finally
        {
            lines = null; // its last lines are written as it is disposed
        }
    }

    async Task<NodeRunFinished> Run(NodeOptions options, ClusterOptions cluster, Endpoint endpoint, Config layered, CancellationToken cancel)
    {
        endpoint.Validate();
        if (Tls is not null) NodeIdentity.IdOf(Tls, options.NodeId); // refused by the server otherwise: said here, at start
        if (options.Clients is null == options.OwnDataDir is null)
            throw new UsageException("give either --clients RANGE (research mode) or --own-data DIR (own-data mode).");
        // `fedavg.faults` is read before anything starts; its client ids are checked once the run's K is known (Prepare).
        // A node takes the run's other settings from the server, but a misspelt key is refused here as by the server.
        var runSection = layered.HasPath(RunSettings.Section) && layered.GetValue(RunSettings.Section).IsObject() ? layered.GetConfig(RunSettings.Section) : null;
        if (runSection is not null) SimulationOptions.CheckKeys(runSection);
        faultRules = runSection is not null ? RunSettings.Faults.Read(runSection) : [];
        OwnData? own = null;
        if (options.OwnDataDir is { } dir)
        {
            // the sample count is all the server learns of the node's data; both files must be readable, pair up and
            // hold images of the size every dataset (hence every model) here has before it joins: the dataset itself,
            // and the label range with it, is known once the server answers (Prepare reads the files again then)
            var (images, labels) = OwnDataFiles(dir);
            var labelFile = IdxFile.Read(labels, 1);
            own = new OwnData(labelFile.Count);
            if (own.SampleCount == 0) throw new DataException($"--own-data {dir}: {labels} holds no samples.");
            var imageFile = IdxFile.Read(images, 3);
            var fitting = DatasetCatalog.All.FirstOrDefault(d => d.Height == imageFile.Dimensions[1] && d.Width == imageFile.Dimensions[2])
                          ?? DatasetCatalog.All[0]; // fits no dataset here: refused with the first one's size
            LabeledImages.CheckShape(imageFile, labelFile, fitting.Height, fitting.Width);
        }
        ClientRequest request = (ClientRequest?)options.Clients ?? own!;
        var serverAddress = new Address(ClusterHosting.Protocol(Tls), ClusterHosting.SystemName, options.ServerHost, options.ServerPort);
        var config = ClusterHosting.Configure(layered, endpoint, ClusterHosting.ClientRole, Tls);

        serverAddress = WithAdapters(serverAddress, layered); // akka.trttl.tcp with the throttler (fault-injection tests)
        // the server first, then its standbys: Akka asks every seed and joins through the first that answers
        var seeds = new[] { serverAddress }.Concat((options.AlsoJoin ?? [])
            .Select(a => WithAdapters(new Address(ClusterHosting.Protocol(Tls), ClusterHosting.SystemName, a.Host, a.Port), layered))).ToList();
        string joined = seeds.Count == 1 ? serverAddress.ToString() : string.Join(" or ", seeds);
        DateTime? lostSince = null;
        string? lastTlsFailure = null;
        // one for the whole run: its connections to the server's weight channel outlive a rejoin
        Akka.Event.ILoggingAdapter? channelLog = null; // the current actor system's
        using var channel = new WeightChannelClient(Tls, line => channelLog?.Warning(line));
        while (true)
        {
            var wait = lostSince is null ? cluster.JoinTimeout : cluster.ServerWait - (DateTime.UtcNow - lostSince.Value);
            // a handshake that failed after this node had joined, for the message if it gives up
            string LastTls() => lastTlsFailure is { } last ? $"; the last TLS handshake with it failed ({last})" : "";
            if (wait <= TimeSpan.Zero)
                throw new ServerUnreachableException($"the server at {options.JoinText} has been gone for more than " +
                                                     $"{HoconText.Duration(cluster.ServerWait)} (fedavg.cluster.server-wait){LastTls()}; giving up.");
            endpoint.CheckPortFree();
            var system = ClusterHosting.Start(config, endpoint, Tls);
            channelLog = Akka.Event.Logging.GetLogger(system, "weight-channel");
            var outcome = new TaskCompletionSource<NodeOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            bool terminated = false;
            try
            {
                Cluster.Get(system).JoinSeedNodes(seeds);
                if (!await ClusterHosting.WaitUntilUp(system, wait, cancel).ConfigureAwait(false))
                {
                    if (ClusterHosting.TlsFailure(system) is { } failed)
                    {
                        if (lostSince is null) throw TlsRefused(failed, options, ClusterHosting.PlaintextAnswered(system));
                        // This node's certificate was accepted when it first joined, and the server's system is going or
                        // coming back (a server that goes on after its removal, or a --resume, on the same port): a
                        // handshake cut off by that is no refusal. Try again, within server-wait.
                        Say($"the TLS handshake with the server at {options.JoinText} failed ({failed}), where it had succeeded before: " +
                            "taken for the server's restart; trying again");
                        lastTlsFailure = failed;
                        await Task.Delay(RetryAfterTlsFailure, cancel).ConfigureAwait(false);
                        continue;
                    }
                    throw new ServerUnreachableException((lostSince is null
                        ? $"no fedavg server answered at {options.JoinText} within {HoconText.Duration(cluster.JoinTimeout)} (--join-timeout)."
                        : $"the server at {options.JoinText} did not come back within {HoconText.Duration(cluster.ServerWait)} (fedavg.cluster.server-wait){LastTls()}.")
                        + (Tls is null ? " If the server runs with TLS, give this node --tls-cert and --tls-ca." : ""));
                }
                OnUp?.Invoke(Cluster.Get(system).SelfAddress);
                OnSystem?.Invoke(system);
                Say(lostSince is null ? $"joined the cluster of {joined}" : $"joined {joined} again");
                lostSince = null;

                var proxy = system.ActorOf(ClusterSingletonProxy.Props($"/user/{ClusterHosting.CoordinatorName}",
                    ClusterSingletonProxySettings.Create(system).WithRole(ClusterHosting.ServerRole)), "coordinator-proxy");
                system.ActorOf(ClientHost.Props(options.NodeId, cluster.Federation, request, proxy, spec => Prepare(spec, options),
                    o =>
                    {
                        if (o is NodeEvent e) Say(e.Text);
                        else outcome.TrySetResult(o);
                    }, channel, heldBackLimit: cluster.JoinTimeout,
                    identity: Tls is { } tls ? new NodeIdentity(tls) : null),
                    ClusterHosting.NodeAgentName);

                var cancelled = Task.Delay(Timeout.Infinite, cancel);
                // every server downed (keep-oldest keeps this side when the lost server was alone): leave, join it again
                var serversDowned = ClusterHosting.WhenRoleDowned(system, ClusterHosting.ServerRole);
                var ended = await Task.WhenAny(outcome.Task, system.WhenTerminated, serversDowned, cancelled).ConfigureAwait(false);
                cancel.ThrowIfCancellationRequested(); // Ctrl-C or SIGTERM: leave (below) and report it
                if (ended == outcome.Task)
                {
                    switch (outcome.Task.Result)
                    {
                        case NodeRunFinished finished:
                            Say($"the run is over ({finished.Reason}); leaving the cluster");
                            return finished;
                        case NodeRefused refused:
                            throw new NodeRefusedException(refused.Reason);
                        case NodePreparationFailed failed:
                            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failed.Error).Throw();
                            break;
                    }
                }
                // The split brain resolver downed every server (this side kept, the server lost, and no standby), or it
                // downed this side, or (with TLS) a handshake failed, which Akka.Remote treats as fatal.
                // A handshake that fails after this node was up is no refusal either: its certificate was accepted.
                if (ended == serversDowned) await ClusterHosting.Leave(system).ConfigureAwait(false);
                else if (ClusterHosting.TlsFailure(system) is { } failed) lastTlsFailure = failed;
                terminated = true;
                lostSince = DateTime.UtcNow;
                Say($"lost the server at {joined}; waiting up to {HoconText.Duration(cluster.ServerWait)} for it to come back");
            }
            finally
            {
                if (!terminated) await ClusterHosting.Leave(system).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A TLS handshake that failed before this node was ever up: the server refused this node's certificate, or its
    /// own is not signed by this node's CA. That is a refusal, not a lost server.
    /// </summary>
    NodeRefusedException TlsRefused(string reason, NodeOptions options, bool plaintext) =>
        new($"the TLS handshake with the server at {options.ServerHost}:{options.ServerPort} failed ({reason}): " + (plaintext
            ? $"it answered in plaintext, so it runs without TLS. {ClusterHosting.PlaintextServerHint}"
            : $"the server refused this node's certificate, or the server's certificate is not signed by {Tls?.CaSetting ?? TlsNames.Flags.Ca}, " +
              "or the server does not run with TLS."));

    /// <summary>
    /// After a handshake cut off by the server's restart, the next try waits this long: Akka.Remote gives up on a failed
    /// handshake by stopping the whole actor system, and a server that refuses would otherwise be asked again at once.
    /// </summary>
    static readonly TimeSpan RetryAfterTlsFailure = TimeSpan.FromSeconds(1);

    /// <summary>The node's clients for a run: loaded and partitioned once, kept across rejoins.</summary>
    /// <remarks>
    /// On a thread of its own, as the server's checkpoint is: the node has joined and its actors run meanwhile, and
    /// this reads and checksums the dataset (55 MB for MNIST), builds its tensors, partitions it and starts the trainers,
    /// seconds of disk and CPU that Task.Run put on the thread pool the default dispatcher runs the node's actors on.
    /// </remarks>
    Task<PreparedClients> Prepare(RunSpec spec, NodeOptions options) => Task.Factory.StartNew(() =>
    {
        string model = options.Model ?? spec.Model;
        ModelZoo.Validate(model);
        var info = DatasetCatalog.Get(spec.Dataset);
        if (data is null || data.Spec != spec)
        {
            data?.Dispose();
            data = options.OwnDataDir is { } dir ? NodeData.Own(dir, options.NodeId, info, spec) : NodeData.Research(new DatasetStore(options.DataDir), info, spec, options.Clients!);
        }
        if (layout?.Model != model)
        {
            using var m = ModelZoo.Create(model, spec.Seed);
            layout = (model, WeightLayout.Of(m).Hash);
        }
        if (pool is null)
            pool = new TrainerPool(model, options.Trainers, options.ThreadsPerTrainer);
        var clients = data.Shards.Select(s => (s.Id, (ILocalTraining)new PooledLocalTraining(pool, data.Train, s.Indices))).ToList();
        // each client tells the server the faults that fired on it (FaultsFired): the server's rounds.csv lists them
        var reports = new FaultReports();
        var prepared = new PreparedClients(layout.Value.Hash, clients, Reports: reports);
        Action<FaultFired> fired = f =>
        {
            reports.Add(f);
            Say($"round {f.Round}: injected fault {f.Behaviour} on {f.ClientId}");
        };
        prepared = new FaultPlan(faultRules, spec.Seed, spec.Clients).Validate($"{RunSettings.Faults.Path}").Apply(prepared, fired);
        if (Faults is not null) prepared = Faults.Apply(prepared, fired);
        return prepared;
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>The server's address with the transport adapters of the configuration in its protocol: akka.tcp becomes
    /// akka.trttl.tcp when the throttler adapter is applied (fault-injection tests).</summary>
    static Address WithAdapters(Address address, Config layered)
    {
        var adapters = layered.HasPath("akka.remote.dot-netty.tcp.applied-adapters")
            ? layered.GetStringList("akka.remote.dot-netty.tcp.applied-adapters") : [];
        if (adapters.Count == 0) return address;
        string protocol = "akka." + string.Concat(adapters.Reverse().Select(a => a + ".")) + address.Protocol["akka.".Length..];
        return new Address(protocol, address.System, address.Host, address.Port);
    }

    /// <summary>The images and labels of --own-data DIR: the standard IDX names (train-images-idx3-ubyte, …), raw or gzip.</summary>
    public static (string Images, string Labels) OwnDataFiles(string dir)
    {
        if (!Directory.Exists(dir)) throw new UsageException($"--own-data {dir}: no such directory.");
        string Find(string stem) =>
            new[] { stem, stem + ".gz" }.Select(n => Path.Combine(dir, n)).FirstOrDefault(File.Exists)
            ?? throw new DataException($"--own-data {dir}: {stem} (or {stem}.gz) not found; a node's own data is an IDX image file and an IDX label file.");
        return (Find("train-images-idx3-ubyte"), Find("train-labels-idx1-ubyte"));
    }

    public void Dispose()
    {
        pool?.Dispose();
        data?.Dispose();
    }

    sealed class NodeData(RunSpec spec, LabeledImages train, IReadOnlyList<(string Id, int[] Indices)> shards) : IDisposable
    {
        public RunSpec Spec => spec;
        public LabeledImages Train => train;
        public IReadOnlyList<(string Id, int[] Indices)> Shards => shards;

        /// <summary>Exactly the shards `fedavg simulate` gives these clients: same dataset, partition, K and seed.</summary>
        public static NodeData Research(DatasetStore store, DatasetInfo info, RunSpec spec, ClientRange range)
        {
            if (range.Last >= spec.Clients)
                throw new UsageException($"--clients {range}: the run has {spec.Clients} clients, 0..{spec.Clients - 1}.");
            var (train, test) = store.Load(info, spec.Standardize);
            test.Dispose();
            var all = Partitioner.Parse(spec.Partition).Split(train.LabelValues, train.Classes, spec.Clients, spec.Seed);
            var shards = Enumerable.Range(range.First, range.Last - range.First + 1).Select(k => (ClientIds.Of(k, spec.Clients), all[k])).ToList();
            return new NodeData(spec, train, shards);
        }

        /// <summary>Own-data mode: every sample of the folder, as one client named after the node.</summary>
        public static NodeData Own(string dir, string nodeId, DatasetInfo info, RunSpec spec)
        {
            var (images, labels) = OwnDataFiles(dir);
            var train = LabeledImages.FromIdx(IdxFile.Read(images, 3), IdxFile.Read(labels, 1), info, spec.Standardize);
            return new NodeData(spec, train, [(nodeId, Enumerable.Range(0, train.Count).ToArray())]);
        }

        public void Dispose() => train.Dispose();
    }

}
