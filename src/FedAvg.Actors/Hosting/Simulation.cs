using Akka.Actor;
using Akka.Configuration;
using FedAvg.Actors.Client;
using FedAvg.Actors.Faults;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Server;
using FedAvg.Core;
using FedAvg.Core.Data;
using FedAvg.Core.Models;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Hosting;

/// <summary>How a simulation ended: every round's metrics and, when it completed, the final global weights.</summary>
public sealed record SimulationResult(
    bool Completed, string? FailureReason, IReadOnlyList<RoundMetrics> Rounds, float[]? FinalWeights,
    int? TargetReachedAtRound, WeightLayout Layout, TimeSpan Elapsed, TimeSpan TrainerBusy);

/// <summary>
/// A whole federation in one actor system: loads and partitions the data, starts a trainer pool, a server and
/// K supervised clients, and waits for the run to end.
/// </summary>
public sealed class Simulation
{
    /// <summary>
    /// Faults to inject into the clients, on top of the options' `fedavg.faults`: the way in of the fault-injection kit
    /// (FedAvg.Actors.Testing's <c>FaultKit</c>, or any <see cref="IClientFaults"/>). Applied to the prepared clients
    /// before any client actor exists. Each fault that fires is reported to <see cref="OnFault"/> and listed in its
    /// round's <see cref="RoundMetrics.Faults"/>.
    /// </summary>
    public IClientFaults? Faults { get; init; }

    /// <summary>Called, on whatever thread the fault acts on, each time an injected fault fires.</summary>
    public Action<FaultFired>? OnFault { get; init; }

    /// <summary>Called on the actor system's thread as each round completes; keep it short.</summary>
    public Action<RoundMetrics>? OnRound { get; init; }

    /// <summary>
    /// Called once the run has really started: data loaded, partition computed, trainers built, the checkpoint (if
    /// any) accepted and the actor system up, but before the first actor exists, so nothing has been written yet.
    /// A host creates its output directory here, so that a run refused at start leaves nothing behind.
    /// </summary>
    public Action? OnStarted { get; init; }

    /// <summary>Where checkpoints go after every round (null: none).</summary>
    public string? CheckpointPath { get; init; }

    /// <summary>A checkpoint to continue from.</summary>
    public Checkpoint? ResumeFrom { get; init; }

    /// <summary>Loads at most this many test samples (evaluation cost in tests); null: the whole test set.</summary>
    public int? TestSamples { get; init; }

    public static string ClientId(int index, int clients) => ClientIds.Of(index, clients);

    public async Task<SimulationResult> RunAsync(SimulationOptions options, Config akkaConfig, DatasetStore store, CancellationToken cancel = default)
    {
        options.Validate();
        var info = DatasetCatalog.Get(options.Dataset);
        var (train, fullTest) = store.Load(info, options.Standardize);
        using var _train = train;
        using var _test = fullTest;
        var test = TestSamples is { } n ? fullTest.Take(n) : fullTest;
        var shards = Partitioner.Parse(options.Partition).Split(train.LabelValues, train.Classes, options.Clients, options.Seed);
        return await RunAsync(options, akkaConfig, train, test, shards, cancel).ConfigureAwait(false);
    }

    public async Task<SimulationResult> RunAsync(SimulationOptions options, Config akkaConfig,
        LabeledImages train, LabeledImages test, int[][] shards, CancellationToken cancel = default)
    {
        options.Validate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var pool = new TrainerPool(options.Model, options.Trainers, options.ThreadsPerTrainer);
        var strategy = options.CreateStrategy();
        var (layout, initial, firstRound) = RunStart.InitialModel(options, strategy, ResumeFrom);
        var spec = new RunSpec("simulation", options.Dataset, options.Model, options.Clients, options.Partition, options.Seed,
            options.Standardize, layout.Hash);
        var settings = new ServerSettings(options.Model, layout, options.Rounds, options.Clients, options.RoundTimeout,
            options.RoundAttempts, options.Seed, options.TargetAccuracy, CheckpointPath, firstRound,
            MinClients: options.MinClients, MaxUpdateNorm: options.MaxUpdateNorm, Spec: spec);
        var rounds = new List<RoundMetrics>();
        var outcome = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);

        var system = ClusterHosting.Create(() => ActorSystem.Create("fedavg", akkaConfig));
        try
        {
            OnStarted?.Invoke();
            // The clients tell the server which faults fired (FaultsFired), as a `fedavg node` does: the server's
            // round record lists them, here as across machines.
            var reports = new FaultReports();
            Action<FaultFired> onFault = f =>
            {
                reports.Add(f);
                OnFault?.Invoke(f);
            };
            Action<RoundMetrics> onRound = metrics =>
            {
                rounds.Add(metrics);
                OnRound?.Invoke(metrics);
            };
            var observer = RunStart.Observer(system, onRound, outcome);
            var server = FederationServer.Props(strategy, settings, initial, w => pool.Evaluate(w, test), observer);
            var coordinator = system.ActorOf(ServerGuardian.Props(server, observer), "coordinator");

            // One node in this process hosts every client, exactly as `fedavg node --clients 0-(K-1)` would.
            var prepared = new PreparedClients(layout.Hash, shards.Select((indices, k) =>
                (ClientId(k, shards.Length), (ILocalTraining)new PooledLocalTraining(pool, train, indices))).ToList());
            prepared = options.FaultPlan.Apply(prepared, onFault);
            if (Faults is not null) prepared = Faults.Apply(prepared, onFault);
            prepared = prepared with { Reports = reports };
            system.ActorOf(ClientHost.Props("local", spec.Federation, new ClientRange(0, shards.Length - 1), coordinator,
                _ => Task.FromResult(prepared), o =>
                {
                    if (o is NodePreparationFailed or NodeRefused) outcome.TrySetResult(new RunFailed(0, $"the local node failed: {o}"));
                }), "node");

            using var registration = cancel.Register(() => outcome.TrySetCanceled(cancel));
            var end = await outcome.Task.ConfigureAwait(false);
            return end switch
            {
                RunCompleted done => new SimulationResult(true, null, rounds, done.FinalWeights, done.TargetReachedAtRound, layout, clock.Elapsed, pool.BusyTime),
                RunFailed failed => new SimulationResult(false, failed.Reason, rounds, null, null, layout, clock.Elapsed, pool.BusyTime),
                _ => throw new InvalidOperationException($"unexpected end of run: {end}"),
            };
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}
