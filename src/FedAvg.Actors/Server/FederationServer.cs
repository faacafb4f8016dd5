using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using FedAvg.Actors.Client;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Core.Strategies;
using FedAvg.Core.Training;

namespace FedAvg.Actors.Server;

/// <summary>
/// The FedAvg server as a state machine:
/// waiting for clients → round r training → aggregating → evaluating → round r+1 … → completed (or failed).
/// It moves weights and keeps time; the strategy decides who trains and how updates combine. Slow work
/// (aggregation, evaluation, checkpoint I/O) runs off the actor and comes back as a message.
/// </summary>
public sealed class FederationServer : ReceiveActor, IWithTimers
{
    const string DeadlineTimer = "round-deadline";

    readonly IStrategy strategy;
    readonly ServerSettings settings;
    readonly Func<float[], Task<Evaluation>> evaluate;
    readonly IActorRef observer;
    readonly IReadOnlyList<LocalClient> localClients;
    readonly ILoggingAdapter log = Context.GetLogger();

    readonly Dictionary<string, (IActorRef Ref, int Samples)> clients = new();
    float[] global;
    int round;
    int attempt;
    RoundPlan plan = null!;
    HashSet<string> sampled = new();
    // What each accepted update said; its weights went into the aggregator and are not kept here.
    readonly Dictionary<string, AcceptedUpdate> accepted = new();
    IRoundAggregator aggregator = null!;
    readonly HashSet<string> failed = new();
    readonly Stopwatch roundClock = new();
    TimeSpan trainingTime;
    double lastAccuracy;

    public ITimerScheduler Timers { get; set; } = null!;

    public FederationServer(IStrategy strategy, ServerSettings settings, float[] initialWeights,
        Func<float[], Task<Evaluation>> evaluate, IActorRef? observer = null, IReadOnlyList<LocalClient>? localClients = null)
    {
        settings.Validate();
        if (initialWeights.Length != settings.Layout.TotalLength)
            throw new ArgumentException($"initial weights have {initialWeights.Length} values, model {settings.ModelName} has {settings.Layout.TotalLength}.");
        this.strategy = strategy;
        this.settings = settings;
        this.evaluate = evaluate;
        this.observer = observer ?? ActorRefs.Nobody;
        this.localClients = localClients ?? [];
        global = initialWeights;
        round = settings.FirstRound - 1;
        WaitingForClients();
    }

    public static Props Props(IStrategy strategy, ServerSettings settings, float[] initialWeights,
        Func<float[], Task<Evaluation>> evaluate, IActorRef? observer = null, IReadOnlyList<LocalClient>? localClients = null) =>
        Akka.Actor.Props.Create(() => new FederationServer(strategy, settings, initialWeights, evaluate, observer, localClients));

    // A client that throws is restarted (its PreRestart reports the lost round); the run goes on without it.
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: -1, withinTimeRange: Timeout.InfiniteTimeSpan, localOnlyDecider: _ => Directive.Restart);

    protected override void PreStart()
    {
        foreach (var client in localClients) Context.ActorOf(client.Props(Self), client.Id);
        log.Info("server: waiting for {0} clients ({1} local)", settings.MinClientsToStart, localClients.Count);
    }

    // ---- waiting for clients -------------------------------------------------------------------------

    void WaitingForClients()
    {
        Receive<ClientAvailable>(available =>
        {
            Register(available);
            if (clients.Count < settings.MinClientsToStart) return;
            if (round >= settings.Rounds) Complete(null);
            else StartRound(round + 1);
        });
        Common();
    }

    // ---- round r: training ---------------------------------------------------------------------------

    void StartRound(int next)
    {
        round = next;
        attempt = 1;
        accepted.Clear();
        failed.Clear();
        roundClock.Restart();
        try
        {
            plan = strategy.ConfigureRound(round, clients.Keys.ToList());
        }
        catch (InvalidOperationException e)
        {
            Fail(e.Message);
            return;
        }
        sampled = plan.Clients.ToHashSet();
        aggregator = strategy.StartAggregation(plan, global);
        Become(Training);
        FanOut(plan.Clients);
    }

    void FanOut(IEnumerable<string> targets)
    {
        foreach (var id in targets)
        {
            if (clients.TryGetValue(id, out var client))
                client.Ref.Tell(new TrainRound(round, global, plan.Config.ToTrainConfig(), Seeds.ForClient(settings.Seed, round, id)));
            else
                failed.Add(id); // gone since it was sampled
        }
        Timers.StartSingleTimer(DeadlineTimer, new RoundDeadline(round, attempt), settings.RoundTimeout);
        CheckProgress();
    }

    void Training()
    {
        Receive<UpdateSubmitted>(update =>
        {
            if (Rejects(update)) return;
            aggregator.Accept(new ClientUpdate(update.ClientId, update.Weights, update.SampleCount, update.TrainLoss, update.TrainAccuracy));
            accepted[update.ClientId] = new AcceptedUpdate(update.ClientId, update.SampleCount, update.TrainLoss, update.TrainSeconds);
            CheckProgress();
        });
        Receive<TrainingFailed>(failure =>
        {
            if (failure.Round != round || !sampled.Contains(failure.ClientId) || accepted.ContainsKey(failure.ClientId)) return;
            log.Warning("server: round {0}: client {1} failed: {2}", round, failure.ClientId, failure.Reason);
            failed.Add(failure.ClientId);
            CheckProgress();
        });
        Receive<RoundDeadline>(deadline =>
        {
            if (deadline.Round != round || deadline.Attempt != attempt) return;
            var silent = plan.Clients.Where(c => !accepted.ContainsKey(c) && !failed.Contains(c)).ToList();
            log.Warning("server: round {0} deadline ({1}) passed; no answer from {2}", round, settings.RoundTimeout, string.Join(", ", silent));
            if (accepted.Count >= plan.MinimumUpdates) CloseRound();
            else RetryOrFail($"round {round}: {accepted.Count} of the required {plan.MinimumUpdates} updates arrived before the deadline");
        });
        Receive<ClientAvailable>(Register);
        Receive<Terminated>(t =>
        {
            var id = Unregister(t.ActorRef);
            if (id is not null && sampled.Contains(id) && !accepted.ContainsKey(id) && !failed.Contains(id))
            {
                failed.Add(id);
                CheckProgress();
            }
        });
        Common();
    }

    /// <summary>True (and logged) for updates the round must not count: stale, unsolicited, duplicate or malformed.</summary>
    bool Rejects(UpdateSubmitted update)
    {
        string? reason = null;
        if (update.Round != round) reason = $"stale (round {update.Round}, current {round})";
        else if (!sampled.Contains(update.ClientId)) reason = "unsolicited (client not sampled this round)";
        else if (accepted.ContainsKey(update.ClientId)) reason = "duplicate";
        else if (failed.Contains(update.ClientId)) reason = "late (already counted as failed in this attempt)";
        else if (update.Weights.Length != settings.Layout.TotalLength)
            reason = $"malformed ({update.Weights.Length} weights, model has {settings.Layout.TotalLength})";
        else if (clients.TryGetValue(update.ClientId, out var c) && c.Samples != update.SampleCount)
            reason = $"inconsistent (claims {update.SampleCount} samples, registered {c.Samples})";
        else if (!AllFinite(update.Weights)) reason = "non-finite weights";

        if (reason is null) return false;
        log.Warning("server: ignoring update from {0} for round {1}: {2}", update.ClientId, update.Round, reason);
        bool lyingAnswerToThisRound = update.Round == round && sampled.Contains(update.ClientId)
            && !accepted.ContainsKey(update.ClientId) && !failed.Contains(update.ClientId);
        if (lyingAnswerToThisRound)
        {
            // a sampled client answered with something unusable: its answer for this round is a failure
            failed.Add(update.ClientId);
            CheckProgress();
        }
        return true;
    }

    static bool AllFinite(float[] weights)
    {
        foreach (var w in weights)
            if (!float.IsFinite(w)) return false;
        return true;
    }

    void CheckProgress()
    {
        // accepted and failed are disjoint subsets of the sampled clients, so counting them is enough
        if (accepted.Count + failed.Count < sampled.Count) return;
        if (accepted.Count >= plan.MinimumUpdates) CloseRound();
        else RetryOrFail($"round {round}: only {accepted.Count} of the required {plan.MinimumUpdates} sampled clients succeeded");
    }

    void RetryOrFail(string reason)
    {
        if (attempt >= settings.MaxRoundAttempts)
        {
            Fail($"{reason} (after {attempt} attempt{(attempt == 1 ? "" : "s")}).");
            return;
        }
        attempt++;
        var retry = plan.Clients.Where(c => !accepted.ContainsKey(c)).ToList();
        log.Warning("server: {0}; attempt {1} of {2} asks {3} again", reason, attempt, settings.MaxRoundAttempts, string.Join(", ", retry));
        failed.Clear();
        FanOut(retry);
    }

    // ---- aggregating ---------------------------------------------------------------------------------

    void CloseRound()
    {
        Timers.Cancel(DeadlineTimer);
        trainingTime = roundClock.Elapsed;
        Become(Aggregating);
        var closingAggregator = aggregator;
        int closing = round;
        Task.Run(() =>
        {
            var clock = Stopwatch.StartNew();
            var next = closingAggregator.Complete();
            return new Aggregated(closing, next, clock.Elapsed);
        }).PipeTo(Self, failure: e => new RoundClosingFailed(closing, "aggregation", e));
    }

    void Aggregating()
    {
        Receive<Aggregated>(done =>
        {
            global = done.Weights;
            Become(() => Evaluating(done.Elapsed));
            var weights = global;
            int closing = round;
            var checkpoint = settings.CheckpointPath is { } path
                ? new Core.Runtime.Checkpoint(settings.ModelName, settings.Layout, closing, settings.Seed, weights)
                : null;
            EvaluateAndCheckpoint(weights, checkpoint, settings.CheckpointPath)
                .PipeTo(Self, success: r => new Evaluated(closing, r.Evaluation, r.Elapsed),
                    failure: e => new RoundClosingFailed(closing, "evaluation or checkpoint", e));
        });
        Receive<RoundClosingFailed>(f => Fail($"round {f.Round}: {f.Step} failed: {f.Error.GetBaseException().Message}"));
        Receive<ClientAvailable>(Register);
        Receive<Terminated>(t => Unregister(t.ActorRef));
        Common();
    }

    async Task<(Evaluation Evaluation, TimeSpan Elapsed)> EvaluateAndCheckpoint(float[] weights, Core.Runtime.Checkpoint? checkpoint, string? path)
    {
        var clock = Stopwatch.StartNew();
        // Both only read the new weights; the file's fsync overlaps the trainers' forward passes. The save waits on
        // the disk, so it gets a thread of its own rather than one of the pool's that the actors run on.
        var saved = checkpoint is null
            ? Task.CompletedTask
            : Task.Factory.StartNew(() => checkpoint.Save(path!), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var evaluation = evaluate(weights);
        await Task.WhenAll(evaluation, saved).ConfigureAwait(false);
        return (evaluation.Result, clock.Elapsed);
    }

    // ---- evaluating ----------------------------------------------------------------------------------

    void Evaluating(TimeSpan aggregationTime)
    {
        Receive<Evaluated>(done =>
        {
            var ordered = accepted.Values.OrderBy(u => u.ClientId, StringComparer.Ordinal).ToList();
            long samples = ordered.Sum(u => (long)u.SampleCount);
            double meanTrainLoss = ordered.Sum(u => u.TrainLoss * u.SampleCount) / samples;
            lastAccuracy = done.Evaluation.Accuracy;
            var metrics = new RoundMetrics(round, plan.Clients.Count, accepted.Count, plan.Clients.Count - accepted.Count, attempt,
                done.Evaluation.Loss, done.Evaluation.Accuracy, meanTrainLoss,
                trainingTime.TotalSeconds, ordered.Sum(u => u.TrainSeconds), aggregationTime.TotalSeconds,
                done.Elapsed.TotalSeconds, roundClock.Elapsed.TotalSeconds);
            log.Info("server: round {0} done: test accuracy {1:F4}, loss {2:F4}, {3}/{4} clients, {5:F2}s",
                round, metrics.TestAccuracy, metrics.TestLoss, metrics.Succeeded, metrics.Sampled, metrics.RoundSeconds);
            observer.Tell(new RoundCompleted(metrics));

            if (settings.TargetAccuracy is { } target && lastAccuracy >= target) Complete(round);
            else if (round >= settings.Rounds) Complete(null);
            else StartRound(round + 1);
        });
        Receive<RoundClosingFailed>(f => Fail($"round {f.Round}: {f.Step} failed: {f.Error.GetBaseException().Message}"));
        Receive<ClientAvailable>(Register);
        Receive<Terminated>(t => Unregister(t.ActorRef));
        Common();
    }

    // ---- the end -------------------------------------------------------------------------------------

    void Complete(int? targetReachedAt)
    {
        Timers.CancelAll();
        log.Info("server: run completed after round {0}", round);
        observer.Tell(new RunCompleted(round, lastAccuracy, targetReachedAt, global));
        Become(Finished);
    }

    void Fail(string reason)
    {
        Timers.CancelAll();
        log.Error("server: run failed: {0}", reason);
        observer.Tell(new RunFailed(round, reason));
        Become(Finished);
    }

    void Finished()
    {
        Receive<ClientAvailable>(_ => { });
        Receive<Terminated>(_ => { });
        Common();
    }

    // ---- in every state ------------------------------------------------------------------------------

    void Common()
    {
        Receive<UpdateSubmitted>(u => log.Warning("server: ignoring update from {0} for round {1}: round {2} is closed", u.ClientId, u.Round, round));
        Receive<TrainingFailed>(_ => { });
        Receive<RoundDeadline>(_ => { });
        Receive<ClientAvailable>(Register);
        Receive<Terminated>(t => Unregister(t.ActorRef));
    }

    void Register(ClientAvailable available)
    {
        var sender = Sender;
        if (clients.TryGetValue(available.ClientId, out var known) && known.Ref.Equals(sender)) return;
        if (available.SampleCount <= 0)
        {
            log.Warning("server: refusing client {0}: it has {1} samples", available.ClientId, available.SampleCount);
            return;
        }
        clients[available.ClientId] = (sender, available.SampleCount);
        Context.Watch(sender);
        log.Debug("server: client {0} available with {1} samples", available.ClientId, available.SampleCount);
    }

    string? Unregister(IActorRef gone)
    {
        var entry = clients.FirstOrDefault(c => c.Value.Ref.Equals(gone));
        if (entry.Key is null) return null;
        clients.Remove(entry.Key);
        log.Warning("server: client {0} is gone", entry.Key);
        return entry.Key;
    }

    sealed record AcceptedUpdate(string ClientId, int SampleCount, double TrainLoss, double TrainSeconds);
    sealed record RoundDeadline(int Round, int Attempt) : INoSerializationVerificationNeeded;
    sealed record Aggregated(int Round, float[] Weights, TimeSpan Elapsed) : INoSerializationVerificationNeeded;
    sealed record Evaluated(int Round, Evaluation Evaluation, TimeSpan Elapsed) : INoSerializationVerificationNeeded;
    sealed record RoundClosingFailed(int Round, string Step, Exception Error) : INoSerializationVerificationNeeded;
}
