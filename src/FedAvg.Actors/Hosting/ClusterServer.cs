using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Server;
using FedAvg.Actors.Transfer;
using FedAvg.Core.Data;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// `fedavg server`: a cluster node with the `server` role. It evaluates the global model on the test set and runs the
/// coordinator as a cluster singleton (restricted to the server role, reached by nodes through a singleton proxy);
/// the clients live on `fedavg node` processes that join it.
/// </summary>
public sealed class ClusterServer
{
    /// <summary>Called on the observer's thread as each round completes; keep it short.</summary>
    public Action<RoundMetrics>? OnRound { get; init; }

    /// <summary>Called once the server listens, with the address nodes join (akka.tcp://fedavg@HOST:PORT).</summary>
    public Action<Address>? OnListening { get; init; }

    /// <summary>Called with the server's actor system once its cluster is up (node-level fault injection in tests).</summary>
    public Action<ActorSystem>? OnSystem { get; init; }

    /// <summary>Membership lines (a node joined, registered, was lost), on the observer's thread.</summary>
    public Action<string>? OnEvent { get; init; }

    public string? CheckpointPath { get; init; }
    public Checkpoint? ResumeFrom { get; init; }
    public int? TestSamples { get; init; }

    /// <summary>Registered clients to wait for before round 1 (default: min-clients).</summary>
    public int? StartClients { get; init; }

    /// <summary>Mutual TLS for the transport (null: plaintext, which the command allows on loopback or with --insecure).</summary>
    public TransportSecurity? Tls { get; init; }

    /// <summary>
    /// Stand by for the server at this address instead of starting a run: join its cluster as a second `server` member,
    /// keep a replica of its run (each round's record and checkpoint, in this server's run directory), and take over
    /// the coordinator from the last replica if that server's node is lost. At the run's end it leaves first.
    /// </summary>
    public Address? StandbyOf { get; init; }

    /// <summary>
    /// Runs the federation (or stands by) until the run ends. A server that the cluster removes (cut off from two or
    /// more members for longer than detection plus stable-after, hocon/cluster.conf) while no other server member was
    /// in it goes on with the run by itself: a new actor system on the same ports, from the last checkpoint (what
    /// `fedavg server --resume` would do, without a person to type it), which the nodes join again within their
    /// server-wait. At most <see cref="ClusterOptions.ServerRestarts"/> times in a row without a round completed in
    /// between; then, or with a standby in the cluster (which took over), it throws <see cref="ServerDownedException"/>.
    /// </summary>
    public async Task<SimulationResult> RunAsync(SimulationOptions options, ClusterOptions cluster, Endpoint endpoint, Config layered,
        DatasetStore store, CancellationToken cancel = default)
    {
        options.Validate();
        if (options.Faults.Count > 0)
            throw new FedAvg.Core.UsageException($"{RunSettings.Faults.Path} acts on clients, and a server has none: give the faults to " +
                                                 "the nodes that host those clients (fedavg node --config FILE).");
        if (StandbyOf is not null && (CheckpointPath is null || ResumeFrom is not null))
            throw new FedAvg.Core.UsageException("a standby server keeps its replica in its own run directory: it needs one, and cannot --resume.");
        endpoint.Validate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var info = DatasetCatalog.Get(options.Dataset);
        var (train, fullTest) = store.Load(info, options.Standardize);
        train.Dispose(); // the nodes train; the server only evaluates
        using var _test = fullTest;
        var test = TestSamples is { } n ? fullTest.Take(n) : fullTest;
        using var pool = new TrainerPool(options.Model, options.Trainers, options.ThreadsPerTrainer);
        // the model and checkpoint are checked before anything starts; the coordinator starts from these unless a
        // standby has a replica by then
        var firstStrategy = options.CreateStrategy();
        var (layout, firstInitial, firstRoundOfRun) = RunStart.InitialModel(options, firstStrategy, ResumeFrom);
        int startedOnce = 0;
        var spec = new RunSpec(cluster.Federation, options.Dataset, options.Model, options.Clients, options.Partition, options.Seed,
            options.Standardize, layout.Hash);
        // Built when the coordinator starts on this node: at once on the active server, and on a standby only when it
        // takes over, from the last replica it kept.
        long replicatedRound = 0; // written by the replica's callback, read as the coordinator starts
        bool coordinatorStarted = false; // the coordinator started on this node (a standby: it took over)
        // with TLS: who a member is (its joins, welcomes and standby joins), for the coordinator and the feed alike
        var identity = Tls is { } tls ? new NodeIdentity(tls) : null;
        var rounds = new List<RoundMetrics>(); // over every part of the run
        void AddRound(RoundMetrics m)
        {
            rounds.RemoveAll(r => r.Round >= m.Round); // a standby that took over, or a server that went on, runs again the round not checkpointed
            rounds.Add(m);
            OnRound?.Invoke(m);
        }
        int LastRound() => rounds.Count == 0 ? 0 : rounds[^1].Round;

        for (var (from, at, inARow) = (ResumeFrom, endpoint, 0); ; )
        {
            int before = LastRound();
            try
            {
                return await Part(from, at).ConfigureAwait(false);
            }
            catch (ServerDownedException downed) when (StandbyOf is null && !downed.OtherServers && CheckpointPath is not null)
            {
                inARow = LastRound() > before ? 1 : inARow + 1;
                if (inARow > cluster.ServerRestarts)
                    throw new ServerDownedException(
                        "this server was cut off from the other members for longer than the cluster waits, and removed from the cluster " +
                        "(hocon/cluster.conf, keep-oldest), " + (cluster.ServerRestarts == 0
                            ? "and with fedavg.cluster.server-restarts = 0 it does not go on by itself."
                            : $"{inARow} times with no round completed in between; it went on by itself after the first {cluster.ServerRestarts} " +
                              $"(fedavg.cluster.server-restarts = {cluster.ServerRestarts}).") +
                        " Once the network between this server and its nodes holds, continue with `fedavg server --resume` on the run directory.", false);
                from = File.Exists(CheckpointPath) ? Checkpoint.Load(CheckpointPath, options.Model, firstStrategy.Name) : null;
                at = downed.Bound ?? at;
                OnEvent?.Invoke("cut off from the other members for longer than the cluster waits, and removed from the cluster " +
                                "(hocon/cluster.conf, keep-oldest); no standby was in it, so this server goes on with the run itself, from " +
                                $"{(from is null ? "the initial model" : $"the checkpoint of round {from.Round}")} ({inARow} of " +
                                $"{cluster.ServerRestarts} in a row, fedavg.cluster.server-restarts): its nodes join it again once they reach it");
            }
        }

        // One actor system's part of the run: all of it, unless this server is removed from the cluster and goes on.
        async Task<SimulationResult> Part(Checkpoint? resumeFrom, Endpoint endpoint)
        {
            int watchingStrays = 0;
            Props Coordinator(IActorRef observer, WeightChannelServer channel, ActorSystem system, IActorRef feed)
            {
                // where the coordinator runs, no other server member but an accepted standby may stay (StrayServers)
                if (Interlocked.Exchange(ref watchingStrays, 1) == 0)
                    system.ActorOf(StrayServers.Props(feed, cluster.JoinTimeout, OnEvent), "stray-servers");
                IStrategy strategy;
                float[] initial;
                int firstRound;
                Checkpoint? from = resumeFrom;
                if (Interlocked.Read(ref replicatedRound) == 0 && Interlocked.Exchange(ref startedOnce, 1) == 0)
                    (strategy, initial, firstRound) = (firstStrategy, firstInitial, firstRoundOfRun); // the model built above, not again
                else
                {
                    strategy = options.CreateStrategy(); // a fresh one: the state comes from the replica
                    if (Interlocked.Read(ref replicatedRound) > 0) from = Checkpoint.Load(CheckpointPath!, options.Model, strategy.Name);
                    (_, initial, firstRound) = RunStart.InitialModel(options, strategy, from);
                }
                coordinatorStarted = true;
                if (StandbyOf is not null) OnEvent?.Invoke($"taking over the coordinator from {(from is null ? "the initial model" : $"the checkpoint of round {from.Round}")}");
                var settings = new ServerSettings(options.Model, layout, options.Rounds, StartClients ?? options.MinClients, options.RoundTimeout,
                    options.RoundAttempts, options.Seed, options.TargetAccuracy, CheckpointPath, firstRound,
                    MinClients: options.MinClients, MaxUpdateNorm: options.MaxUpdateNorm, WaitForClients: cluster.WaitForClients, Spec: spec);
                return FederationServer.Props(strategy, settings, initial, w => pool.Evaluate(w, test), observer, channel, identity);
            }

            endpoint.CheckPortFree();
            var system = ClusterHosting.Start(ClusterHosting.Configure(layered, endpoint, ClusterHosting.ServerRole, Tls), endpoint, Tls);
            var outcome = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
            var standbyEnd = new TaskCompletionSource<StandbyReport>(TaskCreationOptions.RunContinuationsAsynchronously);
            bool left = false;
            WeightChannelServer? channel = null;
            try
            {
                var self = Cluster.Get(system);
                if (StandbyOf is { } active) self.JoinSeedNodes([active]);
                else self.Join(self.SelfAddress);
                if (!await ClusterHosting.WaitUntilUp(system, StandbyOf is null ? TimeSpan.FromSeconds(30) : cluster.JoinTimeout, cancel).ConfigureAwait(false))
                    throw StandbyOf is { } a
                        ? ClusterHosting.TlsFailure(system) is { } failed
                            ? new NodeRefusedException($"the TLS handshake with the server at {a.Host}:{a.Port} failed ({failed}): " + (ClusterHosting.PlaintextAnswered(system)
                                ? $"it answered in plaintext, so it runs without TLS. {ClusterHosting.PlaintextServerHint}"
                                : $"the server refused this standby's certificate, or the server's certificate is not signed by {Tls?.CaSetting ?? TlsNames.Flags.Ca}."))
                            : new ServerUnreachableException($"no fedavg server answered at {a.Host}:{a.Port} within {HoconText.Duration(cluster.JoinTimeout)} (fedavg.cluster.join-timeout): a standby joins a running server.")
                        : new InvalidOperationException($"the server's own cluster did not come up at {self.SelfAddress}.");
                channel = WeightChannelServer.Start(endpoint.Bind, endpoint.WeightChannelPort, Tls, Akka.Event.Logging.GetLogger(system, "weight-channel"),
                    endpoint.DataPort is null ? "--data-port (default --port + 1)" : "--data-port");
                OnSystem?.Invoke(system);
                OnListening?.Invoke(self.SelfAddress);
                OnEvent?.Invoke($"weight channel at {endpoint.Hostname}:{channel.Port}{(Tls is null ? "" : " (mutual TLS)")}");

                string settingsText = options.ToHocon();
                var feed = system.ActorOf(StandbyFeed.Props(cluster.Federation, CheckpointPath, theirs => SettingsRejection(settingsText, theirs),
                        identity is { } id ? () => id.Tls.Revoked : null, identity),
                    ClusterHosting.StandbyFeedName);
                var observer = RunStart.Observer(system, m =>
                {
                    AddRound(m);
                    feed.Tell(new RoundCompleted(m));
                }, outcome, OnEvent);
                if (StandbyOf is { } activeServer)
                {
                    var session = InSession.NewSession();
                    system.ActorOf(StandbyReplica.Props(activeServer,
                        new StandbyJoin(cluster.Federation, settingsText, session, identity?.ProveStandbyJoin(cluster.Federation, session, self.SelfAddress)),
                        CheckpointPath!, options.Model,
                        firstStrategy.Name, report =>
                        {
                            switch (report)
                            {
                                case StandbyEvent e: OnEvent?.Invoke(e.Text); break;
                                case StandbyRound r: observer.Tell(new RoundCompleted(r.Metrics)); break; // in order with the coordinator's, if it starts here
                                case StandbyKept k:
                                    Interlocked.Exchange(ref replicatedRound, k.Round);
                                    OnEvent?.Invoke($"kept the replica of round {k.Round}");
                                    break;
                                default: standbyEnd.TrySetResult(report); break;
                            }
                        }, cluster.JoinTimeout, Tls), "standby");
                }
                var coordinatorChannel = channel;
                system.ActorOf(ClusterSingletonManager.Props(ServerGuardian.Props(() => Coordinator(observer, coordinatorChannel, system, feed), observer), PoisonPill.Instance,
                    ClusterSingletonManagerSettings.Create(system).WithRole(ClusterHosting.ServerRole)), ClusterHosting.CoordinatorName);

                using var registration = cancel.Register(() => outcome.TrySetCanceled(cancel));
                var ended = await Task.WhenAny(outcome.Task, standbyEnd.Task, system.WhenTerminated).ConfigureAwait(false);
                if (ended == system.WhenTerminated)
                {
                    left = true;
                    if (StandbyOf is null || coordinatorStarted)
                        throw new ServerDownedException(
                            "this server was cut off from the other members for longer than the cluster waits, and removed from the cluster " +
                            "(hocon/cluster.conf, keep-oldest): a standby, if there is one, has taken over; otherwise continue with " +
                            "`fedavg server --resume` on the run directory.",
                            self.State.Members.Any(m => m.HasRole(ClusterHosting.ServerRole) && !m.Address.Equals(self.SelfAddress)),
                            endpoint with { Port = self.SelfAddress.Port ?? endpoint.Port, DataPort = channel.Port });
                    throw new ServerDownedException(WhyStandbyRemoved(self.State, Path.GetDirectoryName(Path.GetFullPath(CheckpointPath!))!,
                        Interlocked.Read(ref replicatedRound)));
                }
                if (ended == standbyEnd.Task)
                {
                    // a standby that never took over: the active server ended the run, and it leaves first
                    await ClusterHosting.Leave(system).ConfigureAwait(false);
                    left = true;
                    switch (standbyEnd.Task.Result)
                    {
                        case StandbyRefusedBy refused:
                            throw new NodeRefusedException($"the server at {StandbyOf!.Host}:{StandbyOf.Port} refused this standby: {refused.Reason}");
                        case StandbyRunOver { Completed: true } when Interlocked.Read(ref replicatedRound) == 0:
                            return new SimulationResult(false, "the server ended the run before this standby had a replica of it", rounds, null, null,
                                layout, clock.Elapsed, pool.BusyTime);
                        case StandbyRunOver { Completed: true }:
                            var final = Checkpoint.Load(CheckpointPath!, options.Model);
                            int? reachedAt = options.TargetAccuracy is { } target && rounds.LastOrDefault() is { } last && last.TestAccuracy >= target ? last.Round : null;
                            return new SimulationResult(true, null, rounds, final.Weights, reachedAt, layout, clock.Elapsed, pool.BusyTime);
                        case StandbyRunOver over:
                            return new SimulationResult(false, over.Reason, rounds, null, null, layout, clock.Elapsed, pool.BusyTime);
                    }
                }
                var end = await outcome.Task.ConfigureAwait(false);
                feed.Tell(end is RunCompleted c ? new RunFinished(true, $"completed after round {c.Rounds}")
                    : new RunFinished(false, ((RunFailed)end).Reason));
                var (fetched, pushed) = channel.Served;
                OnEvent?.Invoke($"weight channel: {pushed} global vectors pushed on the nodes' subscriptions, {fetched} fetched");
                // The coordinator told every node the run is over, and the feed every standby: let them leave first, so none
                // sees its server vanish, and no standby starts the coordinator again as this one hands it over.
                await Task.WhenAll(ClusterHosting.WhenRoleGone(system, ClusterHosting.ClientRole, cluster.LeaveTimeout),
                    ClusterHosting.WhenRoleGone(system, ClusterHosting.ServerRole, cluster.LeaveTimeout)).ConfigureAwait(false);
                // A server member still here is none of this run's standbys, which were told the run is over and left: one
                // whose join went unanswered (a join flood, a lost message) or a member that gave itself the role. As this
                // server leaves, the singleton would be handed to it, and it would start a coordinator of its own: down it.
                foreach (var stray in await ClusterHosting.DownRole(system, ClusterHosting.ServerRole, cluster.LeaveTimeout).ConfigureAwait(false))
                    OnEvent?.Invoke($"downed the server member at {stray}: still in the cluster {cluster.LeaveTimeout.TotalSeconds:0.#} s after the run " +
                                    "ended, it would have been handed the coordinator as this server leaves");
                await ClusterHosting.Leave(system).ConfigureAwait(false);
                left = true;
                return end switch
                {
                    RunCompleted done => new SimulationResult(true, null, rounds, done.FinalWeights, done.TargetReachedAtRound, layout, clock.Elapsed, pool.BusyTime),
                    RunFailed failed => new SimulationResult(false, failed.Reason, rounds, null, null, layout, clock.Elapsed, pool.BusyTime),
                    _ => throw new InvalidOperationException($"unexpected end of run: {end}"),
                };
            }
            finally
            {
                if (!left) await ClusterHosting.Leave(system).ConfigureAwait(false);
                channel?.Dispose();
            }
        }
    }

    /// <summary>
    /// Why a standby that never took over was removed from the cluster, from the last state it saw: the server
    /// unreachable with no node in the cluster (one against one, which keep-oldest settles for the older member, the
    /// server: a standby alone cannot tell a lost server from a cut network); cut off from the server and its nodes; or
    /// downed while the server was reachable (the server downs a server member it has not accepted as a standby, within
    /// the join-timeout or as its run ends).
    /// </summary>
    public static string WhyStandbyRemoved(ClusterEvent.CurrentClusterState last, string runDirectory, long replicatedRound)
    {
        bool serverLost = last.Unreachable.Any(m => m.HasRole(ClusterHosting.ServerRole));
        bool nodes = last.Members.Any(m => m.HasRole(ClusterHosting.ClientRole));
        if (serverLost && !nodes)
            return "this standby stopped: the server it stood by for became unreachable while no node was in the cluster, one member " +
                   "against one, which the cluster settles for the older, the server (hocon/cluster.conf, keep-oldest), since a standby " +
                   "alone cannot tell a lost server from a cut network. " + (replicatedRound > 0
                       ? $"If that server is gone for good, continue the run from this standby's replica of round {replicatedRound}: " +
                         $"`fedavg server --resume {runDirectory}`."
                       : "It held no replica yet: if that server is gone for good, start it again with `fedavg server --resume` on its run directory.");
        if (serverLost)
            return "this standby was cut off from the server and its nodes for longer than the cluster waits, and removed from the cluster " +
                   "(hocon/cluster.conf, keep-oldest); the server goes on without it.";
        return "this standby was removed from the cluster while the server it stood by for was reachable: the server downs a server " +
               "member it has not accepted as a standby within the join-timeout (fedavg.cluster.join-timeout) or as its run ends, " +
               "and any member may down another (docs/security.md).";
    }

    /// <summary>
    /// Why a standby whose run settings are <paramref name="theirs"/> (SimulationOptions.ToHocon) cannot take over this
    /// run, or null: every line must be the same, except the trainers each server evaluates with. The text is compared,
    /// never parsed: it comes from the network.
    /// </summary>
    public static string? SettingsRejection(string ours, string theirs)
    {
        string[] local = [RunSettings.Trainers.Key, RunSettings.ThreadsPerTrainer.Key];
        List<string> Lines(string text) => text.Split('\n').Select(l => l.TrimEnd())
            .Where(l => l.Length > 0 && !local.Any(k => l.TrimStart().StartsWith(k + " =", StringComparison.Ordinal))).ToList();
        var (a, b) = (Lines(ours), Lines(theirs));
        var differ = a.Except(b).Select(l => l.Trim()).Take(3).ToList();
        var extra = b.Except(a).Select(l => l.Trim()).Take(3).ToList();
        if (differ.Count == 0 && extra.Count == 0 && a.Count == b.Count) return null;
        return $"its run settings differ from this server's: it has {(extra.Count > 0 ? string.Join("; ", extra) : "fewer settings")}, " +
               $"this server {(differ.Count > 0 ? string.Join("; ", differ) : "fewer settings")} (a standby takes the same run settings; only " +
               "--trainers and --threads-per-trainer may differ)";
    }
}
