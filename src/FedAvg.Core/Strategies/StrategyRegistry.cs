using System.Globalization;

namespace FedAvg.Core.Strategies;

/// <summary>How a strategy combines a round's updates, and so what a round costs in memory.</summary>
public enum AggregationShape
{
    /// <summary>Folded as they arrive, in client-id order: one model-size sum plus out-of-order arrivals.</summary>
    Streaming,
    /// <summary>Every update of the round kept until it closes: n × model.</summary>
    Buffered,
}

public enum ParameterKind { Real, Integer, Boolean }

/// <summary>
/// One parameter of a strategy, declared once: its name (the key under <c>fedavg.strategy</c>), its default
/// (null: it must be given), a help line and its check, so a CLI or HOCON layer can list, document and parse it.
/// </summary>
public sealed record StrategyParameter(string Name, double? Default, string Help, ParameterKind Kind = ParameterKind.Real,
    Func<double, string?>? Check = null)
{
    public string Key => $"fedavg.strategy.{Name}";

    /// <summary>The value of <paramref name="text"/> (null: the default), checked; <see cref="UsageException"/> naming the key.</summary>
    public double Parse(string? text)
    {
        double value;
        if (text is null)
            value = Default ?? throw new UsageException($"{Key} is required: {Help}.");
        else if (Kind == ParameterKind.Boolean)
            value = text.Trim().ToLowerInvariant() switch
            {
                "on" or "true" or "yes" or "1" => 1,
                "off" or "false" or "no" or "0" => 0,
                _ => throw new UsageException($"{Key} must be on or off, got '{text}'."),
            };
        else if (!double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out value) || !double.IsFinite(value))
            throw new UsageException($"{Key} must be a number, got '{text}'.");
        return Checked(value);
    }

    /// <summary><paramref name="value"/> if it is of the right kind and passes the check; else <see cref="UsageException"/>.</summary>
    public double Checked(double value)
    {
        if (Kind == ParameterKind.Integer && (value != Math.Floor(value) || Math.Abs(value) > int.MaxValue))
            throw new UsageException($"{Key} must be a whole number, got {Format(value)}.");
        if (Check?.Invoke(value) is { } reason) throw new UsageException($"{Key} {reason}, got {Format(value)}.");
        return value;
    }

    public string DefaultText => Default is { } d ? (Kind == ParameterKind.Boolean ? (d != 0 ? "on" : "off") : Format(d)) : "(required)";

    static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    // Checks shared by the declarations.
    public static Func<double, string?> Positive => v => v > 0 ? null : "must be positive";
    public static Func<double, string?> NonNegative => v => v >= 0 ? null : "must be zero or more";
    public static Func<double, string?> UnitInterval => v => v >= 0 && v < 1 ? null : "must be in [0, 1)";
}

/// <summary>The parsed parameters handed to a strategy's factory.</summary>
public sealed class StrategyArguments(IReadOnlyDictionary<string, double> values)
{
    public double this[string name] => values.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no strategy parameter '{name}'.");
    public int Int(string name) => (int)this[name];
    public bool Bool(string name) => this[name] != 0;
}

/// <summary>A strategy as the registry knows it: name, parameters, shape, sources, and how to build it.</summary>
public sealed record StrategyDescriptor(string Name, string Summary, AggregationShape Shape, string Paper, string Flower,
    IReadOnlyList<StrategyParameter> Parameters, Func<FedAvgOptions, StrategyArguments, IStrategy> Factory)
{
    public StrategyParameter Parameter(string name) =>
        Parameters.FirstOrDefault(p => p.Name == name) ?? throw new ArgumentException($"{Name} has no parameter '{name}'.");

    /// <summary>Checks a value given in code (a strategy's constructor) against its declaration.</summary>
    public double Check(string name, double value) => Parameter(name).Checked(value);

    /// <summary>Every parameter at its default (for the listing), or the given values; unknown keys refused.</summary>
    public StrategyArguments Parse(IReadOnlyDictionary<string, string> given)
    {
        foreach (var key in given.Keys)
            if (key != "name" && Parameters.All(p => p.Name != key))
                throw new UsageException(Parameters.Count == 0
                    ? $"fedavg.strategy.{key}: strategy '{Name}' takes no parameters."
                    : $"fedavg.strategy.{key}: strategy '{Name}' has no such parameter; its parameters: {string.Join(", ", Parameters.Select(p => p.Name))}.");
        return new StrategyArguments(Parameters.ToDictionary(p => p.Name, p => p.Parse(given.GetValueOrDefault(p.Name))));
    }

    public IStrategy Create(IReadOnlyDictionary<string, string> parameters, FedAvgOptions options) => Factory(options, Parse(parameters));
}

/// <summary>
/// Builds a strategy by name, as HOCON's <c>fedavg.strategy { name = …, … }</c> gives it: the parameters as strings
/// (the layer above flattens HOCON; this assembly does not reference Akka), the common <see cref="FedAvgOptions"/>.
/// </summary>
public static class StrategyRegistry
{
    public static IReadOnlyList<StrategyDescriptor> All { get; } =
    [
        FedAvgStrategy.Descriptor, FedProxStrategy.Descriptor, FedAvgMStrategy.Descriptor,
        FedAdamStrategy.Descriptor, FedYogiStrategy.Descriptor, FedAdagradStrategy.Descriptor,
        MedianStrategy.Descriptor, TrimmedMeanStrategy.Descriptor, KrumStrategy.Descriptor,
        MultiKrumStrategy.Descriptor, BulyanStrategy.Descriptor,
    ];

    public static IEnumerable<string> Names => All.Select(d => d.Name);

    public static StrategyDescriptor Find(string name) =>
        All.FirstOrDefault(d => d.Name == name)
        ?? throw new UsageException($"fedavg.strategy.name: {Unknown(name)}");

    /// <summary>What is wrong with a strategy name no strategy has, and the names there are.</summary>
    public static string Unknown(string name) => $"unknown strategy '{name}'; the strategies are {string.Join(", ", Names)}.";

    /// <summary>
    /// The strategy <paramref name="name"/> with <paramref name="parameters"/> (missing ones at their defaults; a
    /// "name" key is ignored, so the whole HOCON block may be passed). <see cref="UsageException"/> for an unknown
    /// name, an unknown parameter or a bad value, naming the key.
    /// </summary>
    public static IStrategy Create(string name, IReadOnlyDictionary<string, string> parameters, FedAvgOptions options) =>
        Find(name).Create(parameters, options);
}
