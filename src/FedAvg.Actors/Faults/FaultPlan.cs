using System.Globalization;
using FedAvg.Actors.Client;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Faults;

/// <summary>
/// Changes a node's clients before they are created: wraps their local training and gives them an
/// <see cref="IUpdateInterceptor"/>. <see cref="Hosting.Simulation.Faults"/> and `fedavg node` take one; the kit
/// (FedAvg.Actors.Testing) and `fedavg.faults` build it as a <see cref="FaultPlan"/>.
/// </summary>
public interface IClientFaults
{
    /// <summary>The clients with faults applied; <paramref name="fired"/> is called (on any thread) each time one acts.</summary>
    PreparedClients Apply(PreparedClients clients, Action<FaultFired> fired);
}

/// <summary>
/// Seeded, reproducible faults for a run of <paramref name="clientCount"/> clients: which rule acts on which client in
/// which round depends on (seed, round, client id, rule index) alone, so the same plan replays the same faults in every
/// run, on one node or many, whatever order things happen in.
/// </summary>
public sealed class FaultPlan(IReadOnlyList<FaultRule> rules, int seed, int clientCount) : IClientFaults
{
    const int FractionPurpose = 0x66726163; // "frac"
    const int ProbabilityPurpose = 0x70726f62; // "prob"
    const int DataPurpose = 0x6e6f6973; // "nois"

    readonly HashSet<int>?[] targets = rules.Select((r, i) => Targets(r, i, seed, clientCount)).ToArray();

    public IReadOnlyList<FaultRule> Rules => rules;
    public int Seed => seed;
    public int ClientCount => clientCount;

    /// <summary>Checks every rule against the run's K clients (ids that do not exist are refused).</summary>
    public FaultPlan Validate(string label = "fedavg.faults")
    {
        for (int i = 0; i < rules.Count; i++) rules[i].Validate(clientCount, $"{label}[{i}]");
        return this;
    }

    /// <summary>The client indices rule <paramref name="index"/> aims at; null: every client.</summary>
    public IReadOnlySet<int>? TargetsOf(int index) => targets[index];

    static HashSet<int>? Targets(FaultRule rule, int index, int seed, int clients)
    {
        if (rule.Clients is not null) return rule.Clients.ToHashSet();
        if (rule.Fraction is not { } f) return null;
        // f·K rounded, but at least one: a fraction above 0 (Validate refuses 0) asks for a faulty client, and 0.05 of 6
        // clients rounded to none, so the fault never fired and nothing said so
        int count = Math.Max(1, (int)Math.Round(f * clients, MidpointRounding.AwayFromZero));
        // a Fisher–Yates shuffle of 0..K−1 seeded by (seed, rule): the first `count` ids
        var ids = Enumerable.Range(0, clients).ToArray();
        var random = new Random(Seeds.Derive(seed, index, FractionPurpose));
        for (int i = ids.Length - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (ids[i], ids[j]) = (ids[j], ids[i]);
        }
        return ids.Take(count).ToHashSet();
    }

    /// <summary>The index k of `client-k`, or null for an id of another form (own-data clients: only rules for every client reach them).</summary>
    public static int? IndexOf(string clientId)
    {
        int dash = clientId.LastIndexOf('-');
        return clientId.StartsWith("client-", StringComparison.Ordinal)
               && int.TryParse(clientId.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int k) ? k : null;
    }

    /// <summary>The behaviours that act on <paramref name="clientId"/> in <paramref name="round"/>, in the plan's order.</summary>
    public IReadOnlyList<(int Rule, FaultBehaviour Behaviour)> Firing(int round, string clientId)
    {
        List<(int, FaultBehaviour)>? firing = null;
        int? k = IndexOf(clientId);
        for (int i = 0; i < rules.Count; i++)
        {
            var rule = rules[i];
            if (round < rule.FromRound || round > rule.ToRound) continue;
            if (targets[i] is { } set && (k is null || !set.Contains(k.Value))) continue;
            if (rule.Probability < 1 && Uniform(seed, round, clientId, ProbabilityPurpose, i) >= rule.Probability) continue;
            (firing ??= new()).Add((i, rule.Behaviour));
        }
        return (IReadOnlyList<(int, FaultBehaviour)>?)firing ?? [];
    }

    /// <summary>The seed of a corruption's random numbers (noise, random weights) for one client, round and rule.</summary>
    public int DataSeed(int round, string clientId, int rule) => (int)(Mix(seed, round, clientId, DataPurpose, rule) >> 33);

    /// <summary>A uniform draw in [0, 1) from (seed, round, client, purpose, rule) alone.</summary>
    static double Uniform(int seed, int round, string clientId, int purpose, int rule) =>
        (Mix(seed, round, clientId, purpose, rule) >> 11) * (1.0 / (1UL << 53));

    /// <summary>Seeds.Derive's value for (seed, round, client) and the purpose and rule, through SplitMix64's finalizer
    /// (Derive's low bits alone mix too little for a probability).</summary>
    static ulong Mix(int seed, int round, string clientId, int purpose, int rule)
    {
        unchecked
        {
            ulong z = ((ulong)(uint)Seeds.Derive(seed, round, Seeds.StableHash(clientId)) << 32) ^ (uint)(purpose + rule * 0x9E37);
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    public PreparedClients Apply(PreparedClients clients, Action<FaultFired> fired)
    {
        if (rules.Count == 0) return clients;
        var interceptors = clients.Interceptors is null
            ? new Dictionary<string, IUpdateInterceptor>()
            : new Dictionary<string, IUpdateInterceptor>(clients.Interceptors);
        var wrapped = new List<(string, ILocalTraining)>();
        foreach (var (id, training) in clients.Clients)
        {
            wrapped.Add((id, new FaultyTraining(training, this, fired)));
            interceptors[id] = new FaultyDelivery(this, fired, clients.InterceptorOf(id));
        }
        return clients with { Clients = wrapped, Interceptors = interceptors };
    }
}
