using System.Globalization;
using Akka.Configuration;
using FedAvg.Core;

namespace FedAvg.Actors.Faults;

/// <summary>
/// One entry of `fedavg.faults`: a behaviour, which clients show it (chosen ids, a seeded fraction of the ids, or
/// every client), from which round, and with which probability per (round, client).
/// </summary>
/// <param name="Clients">Client indices (k of `client-k`); null: see <paramref name="Fraction"/>.</param>
/// <param name="Fraction">This share of the K client ids, picked with the run's seed: the same ones every round.
/// Null with null <paramref name="Clients"/>: every client.</param>
/// <param name="Probability">Each round a targeted client shows the fault with this probability, drawn from
/// (seed, round, client, rule) alone, so a run replays.</param>
/// <param name="ToRound">The last round it acts in (inclusive); null: every round from <paramref name="FromRound"/> on.</param>
public sealed record FaultRule(FaultBehaviour Behaviour, IReadOnlyList<int>? Clients = null, double? Fraction = null,
    double Probability = 1.0, int FromRound = 1, int? ToRound = null)
{
    /// <summary>The keys of one `fedavg.faults` entry.</summary>
    public static IReadOnlyList<string> Keys { get; } = ["behaviour", "clients", "fraction", "probability", "from-round", "to-round"];

    /// <summary>Checks the rule alone and against the run's K clients; errors name <paramref name="label"/> (`fedavg.faults[0]`).</summary>
    public void Validate(int clientCount, string label)
    {
        if (!(Probability >= 0 && Probability <= 1))
            throw new UsageException($"{label}.probability must be in [0, 1], got {HoconNumber(Probability)}.");
        if (FromRound < 1) throw new UsageException($"{label}.from-round must be at least 1, got {FromRound}.");
        if (ToRound is { } last && last < FromRound)
            throw new UsageException($"{label}.to-round ({last}) is before from-round ({FromRound}).");
        if (Clients is not null && Fraction is not null)
            throw new UsageException($"{label}: give either clients or fraction, not both.");
        if (Fraction is { } f && !(f > 0 && f <= 1))
            throw new UsageException($"{label}.fraction must be in (0, 1], got {HoconNumber(f)}.");
        if (Clients is not null)
        {
            if (Clients.Count == 0) throw new UsageException($"{label}.clients is empty; leave it out to target every client.");
            foreach (int k in Clients)
            {
                // checked once when read, before the run's K is known (clientCount int.MaxValue), and again with K
                if (k < 0) throw new UsageException($"{label}.clients: client {k} does not exist; client ids start at 0.");
                if (k >= clientCount)
                    throw new UsageException($"{label}.clients: client {k} does not exist; this run has {clientCount} clients, 0..{clientCount - 1}.");
            }
        }
    }

    static string HoconNumber(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>This rule as one HOCON object, as `fedavg.faults` reads it back.</summary>
    public string ToHocon()
    {
        var parts = new List<string> { $"behaviour = {Hosting.HoconText.Quote(Behaviour.Name)}" };
        if (Clients is not null) parts.Add($"clients = [{string.Join(", ", Clients)}]");
        if (Fraction is { } f) parts.Add($"fraction = {HoconNumber(f)}");
        if (Probability != 1.0) parts.Add($"probability = {HoconNumber(Probability)}");
        if (FromRound != 1) parts.Add($"from-round = {FromRound}");
        if (ToRound is { } last) parts.Add($"to-round = {last}");
        return $"{{ {string.Join(", ", parts)} }}";
    }

    public override string ToString() => ToHocon();

    public bool Equals(FaultRule? other) => other is not null && ToHocon() == other.ToHocon();
    public override int GetHashCode() => ToHocon().GetHashCode();

    /// <summary>
    /// Reads the `fedavg.faults` list (absent: no faults). Each entry is an object with <see cref="Keys"/>; a bad one
    /// is a <see cref="UsageException"/> naming `fedavg.faults[i].key` and the reason.
    /// </summary>
    public static IReadOnlyList<FaultRule> ReadList(Config section, string key, string label)
    {
        if (!section.HasPath(key)) return [];
        var value = section.GetValue(key);
        if (value is null || IsEmptyList(value)) return [];
        if (!value.IsArray())
            throw new UsageException($"{label} must be a list of faults, e.g. faults = [ {{ behaviour = sign-flip, fraction = 0.2 }} ].");
        var rules = new List<FaultRule>();
        int i = 0;
        foreach (var item in value.GetArray())
        {
            if (item.IsEmpty) continue; // Akka's HOCON reads `[ ]` as one empty element
            string at = $"{label}[{i}]";
            if (!item.IsObject()) throw new UsageException($"{at} must be an object such as {{ behaviour = drop, clients = [3] }}.");
            var entry = new Config(new Akka.Configuration.Hocon.HoconRoot(item));
            foreach (var k in item.GetObject().Items.Keys)
                if (!Keys.Contains(k)) throw new UsageException($"{at}.{k} is not a fault setting. Valid: {string.Join(", ", Keys)}.");
            if (!entry.HasPath("behaviour"))
                throw new UsageException($"{at}.behaviour is missing; valid behaviours: {string.Join(", ", FaultBehaviour.Valid)}.");
            FaultBehaviour behaviour;
            try
            {
                behaviour = FaultBehaviour.Parse(entry.GetString("behaviour"));
            }
            catch (FormatException e)
            {
                throw new UsageException($"{at}.behaviour: {e.Message}.");
            }
            // what each key holds, for the message when it holds something else (.NET's own says only "The input
            // string 'two' was not in a correct format")
            T Read<T>(string k, Func<T> get, string expected)
            {
                try
                {
                    return get();
                }
                catch (Exception e) when (e is not UsageException)
                {
                    throw new UsageException($"{at}.{k} must be {expected}, got '{entry.GetValue(k)}'.");
                }
            }
            IReadOnlyList<int>? clients = entry.HasPath("clients") ? ReadClients() : null;
            IReadOnlyList<int> ReadClients()
            {
                var v = entry.GetValue("clients");
                if (IsEmptyList(v)) return []; // refused by Validate, with what to do instead
                if (v.IsObject())
                    throw new UsageException($"{at}.clients must be a list of client ids such as [1, 3], not an object.");
                return Read("clients", () => v.IsArray() ? (IReadOnlyList<int>)entry.GetIntList("clients").ToArray() : [entry.GetInt("clients")],
                    "a list of client ids (whole numbers from 0) such as [1, 3]");
            }
            double? fraction = entry.HasPath("fraction") ? Read("fraction", () => entry.GetDouble("fraction"), "a number in (0, 1]") : null;
            double probability = entry.HasPath("probability") ? Read("probability", () => entry.GetDouble("probability"), "a number in [0, 1]") : 1.0;
            int fromRound = entry.HasPath("from-round") ? Read("from-round", () => entry.GetInt("from-round"), "a round number (a whole number from 1)") : 1;
            int? toRound = entry.HasPath("to-round") ? Read("to-round", () => entry.GetInt("to-round"), "a round number (a whole number from 1)") : null;
            var rule = new FaultRule(behaviour, clients, fraction, probability, fromRound, toRound);
            rule.Validate(int.MaxValue, at); // the clients against K: SimulationOptions.Validate, or a node once it knows the run
            rules.Add(rule);
            i++;
        }
        return rules;
    }

    /// <summary>
    /// Akka's HOCON says an empty `[]` is no array: it holds one empty HoconArray (`[ ]`: one empty element), and inside
    /// an object also the whitespace before the next key or the closing brace, as a literal.
    /// </summary>
    static bool IsEmptyList(Akka.Configuration.Hocon.HoconValue value) =>
        value.Values.Any(v => v is Akka.Configuration.Hocon.HoconArray)
        && value.Values.All(v => v is Akka.Configuration.Hocon.HoconArray a ? a.All(e => e.IsEmpty)
                                 : v is Akka.Configuration.Hocon.HoconLiteral l && string.IsNullOrWhiteSpace(l.Value));

    /// <summary>The list as HOCON (config.conf).</summary>
    public static string ListToHocon(IReadOnlyList<FaultRule> rules) =>
        rules.Count == 0 ? "[]" : "[\n" + string.Join(",\n", rules.Select(r => "    " + r.ToHocon())) + "\n  ]";

    public static IEqualityComparer<IReadOnlyList<FaultRule>> ListComparer { get; } = new ByContent();

    sealed class ByContent : IEqualityComparer<IReadOnlyList<FaultRule>>
    {
        public bool Equals(IReadOnlyList<FaultRule>? x, IReadOnlyList<FaultRule>? y) =>
            x is null ? y is null : y is not null && x.SequenceEqual(y);
        public int GetHashCode(IReadOnlyList<FaultRule> list) => list.Aggregate(17, (h, r) => HashCode.Combine(h, r.GetHashCode()));
    }
}
