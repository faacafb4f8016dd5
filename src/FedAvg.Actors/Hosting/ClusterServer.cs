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

    public async Task<SimulationResult> RunAsync(SimulationOptions options, ClusterOptions cluster, Endpoint endpoint, Config layered,
        DatasetStore store, CancellationToken cancel = default)
    {
        options.Validate();
        if (options.Faults.Count > 0)
            throw new FedAvg.Core.UsageException($"{RunSettings.Faults.Path} acts on clients, and a server has none: give the faults to " +
                                                 "the nodes that host those clients (fedavg node --config FILE).");
        endpoint.Validate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var info = DatasetCatalog.Get(options.Dataset);
        var (train, fullTest) = store.Load(info, options.Standardize);
        train.Dispose(); // the nodes train; the server only evaluates
        using var _test = fullTest;
        var test = TestSamples is { } n ? fullTest.Take(n) : fullTest;
        using var pool = new TrainerPool(options.Model, options.Trainers, options.ThreadsPerTrainer);
        var strategy = options.CreateStrategy();
        var (layout, initial, firstRound) = RunStart.InitialModel(options, strategy, ResumeFrom);
        var spec = new RunSpec(cluster.Federation, options.Dataset, options.Model, options.Clients, options.Partition, options.Seed,
            options.Standardize, layout.Hash);
        var settings = new ServerSettings(options.Model, layout, options.Rounds, StartClients ?? options.MinClients, options.RoundTimeout,
            options.RoundAttempts, options.Seed, options.TargetAccuracy, CheckpointPath, firstRound,
            MinClients: options.MinClients, MaxUpdateNorm: options.MaxUpdateNorm, WaitForClients: cluster.WaitForClients, Spec: spec);

        endpoint.CheckPortFree();
        var system = ClusterHosting.Start(ClusterHosting.Configure(layered, endpoint, ClusterHosting.ServerRole, Tls), endpoint, Tls);
        var rounds = new List<RoundMetrics>();
        var outcome = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool left = false;
        WeightChannelServer? channel = null;
        try
        {
            var self = Cluster.Get(system);
            self.Join(self.SelfAddress);
            if (!await ClusterHosting.WaitUntilUp(system, TimeSpan.FromSeconds(30), cancel).ConfigureAwait(false))
                throw new InvalidOperationException($"the server's own cluster did not come up at {self.SelfAddress}.");
            channel = WeightChannelServer.Start(endpoint.Bind, endpoint.WeightChannelPort, Tls, Akka.Event.Logging.GetLogger(system, "weight-channel"),
                endpoint.DataPort is null ? "--data-port (default --port + 1)" : "--data-port");
            OnSystem?.Invoke(system);
            OnListening?.Invoke(self.SelfAddress);
            OnEvent?.Invoke($"weight channel at {endpoint.Hostname}:{channel.Port}{(Tls is null ? "" : " (mutual TLS)")}");

            var observer = RunStart.Observer(system, m =>
            {
                rounds.Add(m);
                OnRound?.Invoke(m);
            }, outcome, OnEvent);
            var server = FederationServer.Props(strategy, settings, initial, w => pool.Evaluate(w, test), observer, channel);
            system.ActorOf(ClusterSingletonManager.Props(ServerGuardian.Props(server, observer), PoisonPill.Instance,
                ClusterSingletonManagerSettings.Create(system).WithRole(ClusterHosting.ServerRole)), ClusterHosting.CoordinatorName);

            using var registration = cancel.Register(() => outcome.TrySetCanceled(cancel));
            var end = await outcome.Task.ConfigureAwait(false);
            var (fetched, pushed) = channel.Served;
            OnEvent?.Invoke($"weight channel: {pushed} global vectors pushed on the nodes' subscriptions, {fetched} fetched");
            // The coordinator told every node the run is over; let them leave first, so none sees its server vanish.
            await ClusterHosting.WhenRoleGone(system, ClusterHosting.ClientRole, cluster.LeaveTimeout).ConfigureAwait(false);
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
