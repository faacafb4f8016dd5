using FedAvg.Actors.Faults;

namespace FedAvg.Actors.Testing;

/// <summary>
/// The behaviours of the kit, each as a <see cref="FaultRule"/> aimed at every client from round 1 with probability 1;
/// narrow it with <see cref="FaultRuleExtensions"/>: <c>Fault.SignFlip.OnFraction(0.2)</c>,
/// <c>Fault.Delay(TimeSpan.FromSeconds(30)).OnClients(3, 7).FromRound(2)</c>, <c>Fault.Crash.OnClients(2).InRound(1)</c>.
/// The same behaviours are `fedavg.faults` entries on the command line (docs/faults.md).
/// </summary>
public static class Fault
{
    /// <summary>Local training throws; the node restarts the client, the round counts it as failed.</summary>
    public static FaultRule Crash => new(FaultBehaviour.Crash);
    /// <summary>The client actor stops instead of answering; the server's death watch drops it for the rest of the run.</summary>
    public static FaultRule Stop => new(FaultBehaviour.Stop);
    /// <summary>The answer comes <paramref name="d"/> later (past the round deadline, it is discarded).</summary>
    public static FaultRule Delay(TimeSpan d) => new(FaultBehaviour.DelayBy(d));
    /// <summary>Local training never ends.</summary>
    public static FaultRule Stall => new(FaultBehaviour.Stall);
    /// <summary>The update is never sent.</summary>
    public static FaultRule Drop => new(FaultBehaviour.Drop);
    /// <summary>The update is sent twice.</summary>
    public static FaultRule Twice => new(FaultBehaviour.Twice);
    /// <summary>The update is sent labelled with the previous round.</summary>
    public static FaultRule Stale => new(FaultBehaviour.Stale);
    /// <summary>Every weight NaN.</summary>
    public static FaultRule NaN => new(FaultBehaviour.NaN);
    /// <summary>Every weight +∞.</summary>
    public static FaultRule Inf => new(FaultBehaviour.Inf);
    /// <summary>Sends w_global − Δ (Δ = w_local − w_global).</summary>
    public static FaultRule SignFlip => new(FaultBehaviour.SignFlip);
    /// <summary>Sends w_global + k·Δ.</summary>
    public static FaultRule Scale(double k) => new(FaultBehaviour.Scale(k));
    /// <summary>Sends w_global + Δ + N(0, σ²) in every coordinate.</summary>
    public static FaultRule Noise(double sigma) => new(FaultBehaviour.Noise(sigma));
    /// <summary>Sends weights drawn uniformly from [−1, 1].</summary>
    public static FaultRule RandomWeights => new(FaultBehaviour.Random);
    /// <summary>Sends one weight fewer than the model has.</summary>
    public static FaultRule WrongLength => new(FaultBehaviour.WrongLength);
    /// <summary>The update claims <paramref name="count"/> samples (its registration stays honest).</summary>
    public static FaultRule ClaimSamples(int count) => new(FaultBehaviour.Samples(count));
    /// <summary>A behaviour by its `fedavg.faults` name: "scale:10", "delay:30s".</summary>
    /// <exception cref="FormatException">An unknown name (the message lists the valid ones) or a bad argument.</exception>
    public static FaultRule Named(string behaviour) => new(FaultBehaviour.Parse(behaviour));
}

/// <summary>Narrowing a <see cref="FaultRule"/>: which clients, which rounds, how often.</summary>
public static class FaultRuleExtensions
{
    /// <summary>Only clients k of `client-k` (0-based, as `fedavg node --clients` counts).</summary>
    public static FaultRule OnClients(this FaultRule rule, params int[] clients) => rule with { Clients = clients, Fraction = null };
    /// <summary>This share of the client ids, picked with the run's seed: the same ones every round.</summary>
    public static FaultRule OnFraction(this FaultRule rule, double fraction) => rule with { Fraction = fraction, Clients = null };
    /// <summary>The first round it acts in (rounds count from 1); it acts in every later one unless <see cref="ToRound"/>.</summary>
    public static FaultRule FromRound(this FaultRule rule, int round) => rule with { FromRound = round };
    /// <summary>The last round it acts in (inclusive).</summary>
    public static FaultRule ToRound(this FaultRule rule, int round) => rule with { ToRound = round };
    /// <summary>Only in round <paramref name="round"/>.</summary>
    public static FaultRule InRound(this FaultRule rule, int round) => rule with { FromRound = round, ToRound = round };
    /// <summary>Each (round, targeted client) shows it with probability <paramref name="p"/>, seeded so a run replays.</summary>
    public static FaultRule WithProbability(this FaultRule rule, double p) => rule with { Probability = p };
}
