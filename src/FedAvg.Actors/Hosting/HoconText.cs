using System.Globalization;
using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace FedAvg.Actors.Hosting;

/// <summary>Writes values as HOCON that Akka's parser reads back to exactly the same value.</summary>
public static class HoconText
{
    public static string Quote(string text)
    {
        var s = new StringBuilder("\"");
        foreach (char c in text)
            s.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return s.Append('"').ToString();
    }

    /// <summary>Round-trip formatting ("R"): the double read back is the double written.</summary>
    public static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Durations are kept to the millisecond (Akka's HOCON reads no finer unit back), so they write exactly.</summary>
    public static TimeSpan WholeMilliseconds(TimeSpan t) => TimeSpan.FromMilliseconds(Math.Round(t.TotalMilliseconds, MidpointRounding.AwayFromZero));

    /// <summary>
    /// In the largest unit that holds it whole (`30s`, `10m`, `1500ms`), so that config.conf and rounds.csv show a
    /// duration the way a user writes it; Akka's parser reads each back to the same millisecond.
    /// </summary>
    public static string Duration(TimeSpan t)
    {
        long ms = (long)t.TotalMilliseconds;
        if (ms == 0) return "0ms";
        foreach (var (unit, size) in Units)
            if (ms % size == 0) return string.Create(CultureInfo.InvariantCulture, $"{ms / size}{unit}");
        return string.Create(CultureInfo.InvariantCulture, $"{ms}ms");
    }

    static readonly (string Unit, long Milliseconds)[] Units = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)];

    /// <summary>The value at KEY as the user wrote it, for an error message.</summary>
    public static string Describe(Config section, string key)
    {
        try
        {
            var value = section.GetValue(key);
            return value.IsString() ? $"'{value.GetString()}'" : $"'{value}'";
        }
        catch (Exception)
        {
            return "the value";
        }
    }

    /// <summary>Every key of the object at KEY but EXCEPT, nested keys joined with dots, values as text.</summary>
    public static IReadOnlyDictionary<string, string> Parameters(Config section, string key, string except)
    {
        var value = section.GetValue(key);
        if (!value.IsObject()) throw new FormatException($"{key} must be an object, e.g. {key} {{ name = fedavg }}");
        var into = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Flatten("", value, into);
        into.Remove(except);
        return into;
    }

    static void Flatten(string prefix, HoconValue value, SortedDictionary<string, string> into)
    {
        if (value.IsObject())
        {
            foreach (var (k, child) in value.GetObject().Items) Flatten(prefix.Length == 0 ? k : $"{prefix}.{k}", child, into);
        }
        else if (value.IsString())
        {
            into[prefix] = value.GetString();
        }
        else
        {
            throw new FormatException($"{prefix} must be a single value, not a list");
        }
    }

    /// <summary>The parameters as `key = "value"` lines of an object's body.</summary>
    public static string ParametersBody(IReadOnlyDictionary<string, string> parameters) =>
        string.Join("\n", parameters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{string.Join(".", p.Key.Split('.').Select(Quote))} = {Quote(p.Value)}"));

    public static IEqualityComparer<IReadOnlyDictionary<string, string>> DictionaryComparer { get; } = new ByContent();

    sealed class ByContent : IEqualityComparer<IReadOnlyDictionary<string, string>>
    {
        public bool Equals(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b) =>
            ReferenceEquals(a, b) || (a is not null && b is not null && a.Count == b.Count &&
                                      a.All(p => b.TryGetValue(p.Key, out var v) && v == p.Value));

        public int GetHashCode(IReadOnlyDictionary<string, string> d) =>
            d.OrderBy(p => p.Key, StringComparer.Ordinal).Aggregate(d.Count, (h, p) => HashCode.Combine(h, p.Key, p.Value));
    }
}
