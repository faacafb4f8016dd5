using System.Collections.Concurrent;
using Akka.Actor;
using FedAvg.Actors.Client;
using FedAvg.Actors.Faults;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;

namespace FedAvg.Actors.Testing;

/// <summary>
/// Seeded, reproducible faults for the clients of a run: give it to <see cref="Simulation.Faults"/> (or
/// <see cref="ClusterNode.Faults"/>), run, then assert on what the run did. Which client shows which fault in which
/// round depends on (seed, round, client id, rule) only, so a run replays exactly.
/// </summary>
/// <example>
/// <code>
/// var faults = FaultKit.For(options).Add(Fault.Scale(10).OnFraction(0.2)).Add(Fault.Crash.OnClients(2).InRound(1));
/// var result = await new Simulation { Faults = faults }.RunAsync(options, akka, store);
/// </code>
/// </example>
public sealed class FaultKit : IClientFaults
{
    readonly List<FaultRule> rules = new();
    readonly ConcurrentQueue<FaultFired> fired = new();
    readonly List<IActorRef> listeners = new();

    /// <param name="seed">The run's seed (fractions and probabilities are drawn from it).</param>
    /// <param name="clients">The run's K: client ids are checked against it, fractions taken of it.</param>
    public FaultKit(int seed, int clients)
    {
        Seed = seed;
        Clients = clients;
    }

    /// <summary>A kit for the run these options describe (its seed and K).</summary>
    public static FaultKit For(SimulationOptions options) => new(options.Seed, options.Clients);

    /// <summary>The run's seed, from which fractions and probabilities are drawn.</summary>
    public int Seed { get; }
    /// <summary>The run's K: rules may aim at clients 0..K−1.</summary>
    public int Clients { get; }
    /// <summary>The rules added so far, in order: rule i is the i of <see cref="TargetsOf"/>.</summary>
    public IReadOnlyList<FaultRule> Rules => rules;

    /// <summary>Adds a rule; an id outside 0..K−1, a probability outside [0, 1] and the like throw a <see cref="Core.UsageException"/> at once.</summary>
    public FaultKit Add(FaultRule rule)
    {
        rule.Validate(Clients, $"fault {rules.Count} ({rule.Behaviour})");
        rules.Add(rule);
        return this;
    }

    /// <summary>Tells <paramref name="listener"/> (a TestProbe) a <see cref="FaultFired"/> each time a fault acts, for ExpectMsg.</summary>
    public FaultKit ReportTo(IActorRef listener)
    {
        lock (listeners) listeners.Add(listener);
        return this;
    }

    /// <summary>Every fault that acted so far, in the order they did.</summary>
    public IReadOnlyList<FaultFired> Fired => fired.ToArray();

    /// <summary>The plan these rules make.</summary>
    public FaultPlan Plan => new(rules.ToList(), Seed, Clients);

    /// <summary>The clients these rules aim at, per rule (null: every client), e.g. to see which ids a fraction picked.</summary>
    public IReadOnlySet<int>? TargetsOf(int rule) => Plan.TargetsOf(rule);

    PreparedClients IClientFaults.Apply(PreparedClients clients, Action<FaultFired> report) =>
        Plan.Apply(clients, f =>
        {
            fired.Enqueue(f);
            IActorRef[] to;
            lock (listeners) to = listeners.ToArray();
            foreach (var l in to) l.Tell(f);
            report(f);
        });
}
