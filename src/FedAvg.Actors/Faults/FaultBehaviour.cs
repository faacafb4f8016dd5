using System.Globalization;
using Akka.Configuration;

namespace FedAvg.Actors.Faults;

/// <summary>Where a behaviour acts: on the result of local training, or on the update as the client sends it.</summary>
public enum FaultStage
{
    /// <summary>Around local training (<see cref="Client.ILocalTraining"/>): crash, delay, stall, corruptions, sample-count lies.</summary>
    Training,
    /// <summary>On the way out (<see cref="Client.IUpdateInterceptor"/>): drop, twice, stale, stop.</summary>
    Sending,
}

/// <summary>
/// One fault a client can be made to show, by name as `fedavg.faults` and the kit write it: `crash`, `stop`,
/// `delay:30s`, `stall`, `drop`, `twice`, `stale`, `nan`, `inf`, `sign-flip`, `scale:10`, `noise:0.5`, `random`,
/// `wrong-length`, `samples:0`. Corruptions act on the update Δ = w_local − w_global: `sign-flip` sends
/// w_global − Δ, `scale:k` sends w_global + k·Δ, `noise:σ` adds N(0, σ²) to every coordinate of Δ.
/// </summary>
public sealed record FaultBehaviour
{
    FaultBehaviour(string kind, FaultStage stage, double value = 0, TimeSpan delay = default, string? text = null)
    {
        Kind = kind;
        Stage = stage;
        Value = value;
        Delay = delay;
        Name = text ?? kind;
    }

    /// <summary>The behaviour's kind: `scale` for `scale:10`.</summary>
    public string Kind { get; }
    /// <summary>As written: `scale:10`.</summary>
    public string Name { get; }
    public FaultStage Stage { get; }
    /// <summary>k of scale, σ of noise, the claimed count of samples.</summary>
    public double Value { get; }
    /// <summary>d of delay.</summary>
    public TimeSpan Delay { get; }

    public override string ToString() => Name;

    /// <summary>Local training throws: the client is restarted by its node and the round counts it as failed.</summary>
    public static FaultBehaviour Crash { get; } = new("crash", FaultStage.Training);
    /// <summary>The client actor stops instead of sending its update: the server's death watch drops it for good.</summary>
    public static FaultBehaviour Stop { get; } = new("stop", FaultStage.Sending);
    /// <summary>Local training never ends: the client never answers again.</summary>
    public static FaultBehaviour Stall { get; } = new("stall", FaultStage.Training);
    /// <summary>The update is not sent.</summary>
    public static FaultBehaviour Drop { get; } = new("drop", FaultStage.Sending);
    /// <summary>The update is sent twice (the second carries a copy of the weights).</summary>
    public static FaultBehaviour Twice { get; } = new("twice", FaultStage.Sending);
    /// <summary>The update is sent labelled with the previous round.</summary>
    public static FaultBehaviour Stale { get; } = new("stale", FaultStage.Sending);
    /// <summary>Every weight NaN.</summary>
    public static FaultBehaviour NaN { get; } = new("nan", FaultStage.Training);
    /// <summary>Every weight +∞.</summary>
    public static FaultBehaviour Inf { get; } = new("inf", FaultStage.Training);
    /// <summary>w_global − Δ.</summary>
    public static FaultBehaviour SignFlip { get; } = new("sign-flip", FaultStage.Training);
    /// <summary>Weights drawn uniformly from [−1, 1], seeded.</summary>
    public static FaultBehaviour Random { get; } = new("random", FaultStage.Training);
    /// <summary>One weight fewer than the model has.</summary>
    public static FaultBehaviour WrongLength { get; } = new("wrong-length", FaultStage.Training);

    /// <summary>Local training answers after <paramref name="d"/> more.</summary>
    public static FaultBehaviour DelayBy(TimeSpan d) =>
        d > TimeSpan.Zero ? new("delay", FaultStage.Training, delay: d, text: $"delay:{Hosting.HoconText.Duration(d)}")
                          : throw new FormatException($"a delay must be positive, got {d}");
    /// <summary>w_global + k·Δ.</summary>
    public static FaultBehaviour Scale(double k) =>
        double.IsFinite(k) ? new("scale", FaultStage.Training, k, text: $"scale:{Hosting.HoconText.Number(k)}")
                           : throw new FormatException($"scale needs a finite k, got {k}");
    /// <summary>Δ + N(0, σ²) in every coordinate, seeded by (seed, round, client).</summary>
    public static FaultBehaviour Noise(double sigma) =>
        double.IsFinite(sigma) && sigma > 0 ? new("noise", FaultStage.Training, sigma, text: $"noise:{Hosting.HoconText.Number(sigma)}")
                                            : throw new FormatException($"noise needs σ > 0, got {sigma}");
    /// <summary>The update claims <paramref name="count"/> samples (≤ 0, or far above the client's shard).</summary>
    public static FaultBehaviour Samples(int count) => new("samples", FaultStage.Training, count, text: $"samples:{count}");

    /// <summary>The names `fedavg.faults` accepts, for error messages.</summary>
    public static IReadOnlyList<string> Valid { get; } =
        ["crash", "stop", "delay:DURATION", "stall", "drop", "twice", "stale", "nan", "inf", "sign-flip", "scale:K", "noise:SIGMA",
         "random", "wrong-length", "samples:N"];

    /// <summary>Reads a behaviour as `fedavg.faults` writes it; a <see cref="FormatException"/> lists the valid ones.</summary>
    public static FaultBehaviour Parse(string text)
    {
        string t = text.Trim();
        int colon = t.IndexOf(':');
        string kind = colon < 0 ? t : t[..colon];
        string? arg = colon < 0 ? null : t[(colon + 1)..].Trim();
        FaultBehaviour? simple = kind switch
        {
            "crash" => Crash, "stop" => Stop, "stall" => Stall, "drop" => Drop, "twice" => Twice, "stale" => Stale,
            "nan" => NaN, "inf" => Inf, "sign-flip" => SignFlip, "random" => Random, "wrong-length" => WrongLength,
            _ => null,
        };
        if (simple is not null)
            return arg is null ? simple : throw new FormatException($"'{kind}' takes no argument, got '{t}'");
        if (kind is "delay" or "scale" or "noise" or "samples" && string.IsNullOrEmpty(arg))
            throw new FormatException($"'{kind}' needs an argument, e.g. {Valid.First(v => v.StartsWith(kind + ":"))}");
        return kind switch
        {
            "delay" => DelayBy(ParseDuration(arg!)),
            "scale" => Scale(ParseNumber(arg!, "scale")),
            "noise" => Noise(ParseNumber(arg!, "noise")),
            "samples" => int.TryParse(arg, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n)
                ? Samples(n) : throw new FormatException($"samples needs a whole number, got '{arg}'"),
            _ => throw new FormatException($"unknown behaviour '{t}'; valid: {string.Join(", ", Valid)}"),
        };
    }

    static double ParseNumber(string arg, string kind) =>
        double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            ? v : throw new FormatException($"{kind} needs a number, got '{arg}'");

    static TimeSpan ParseDuration(string arg)
    {
        try
        {
            return ConfigurationFactory.ParseString($"d = {arg}").GetTimeSpan("d", null, allowInfinite: false);
        }
        catch (Exception) // Akka's own FormatException says only "The input string 'xyz' was not in a correct format"
        {
            throw new FormatException($"delay needs a duration such as 30s or 500ms, got '{arg}'");
        }
    }
}
