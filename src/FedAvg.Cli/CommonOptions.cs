using System.CommandLine;
using FedAvg.Core.Data;

namespace FedAvg.Cli;

/// <summary>Options that several commands share, with the same names and defaults everywhere.</summary>
public static class CommonOptions
{
    /// <summary>
    /// The HOCON line a flag of a `fedavg.cluster` key sets (its value quoted: it is text), noting in
    /// <paramref name="given"/> that an error about the key names <paramref name="flag"/>.
    /// </summary>
    public static string ClusterFlag(IDictionary<string, string> given, string key, string flag, string value)
    {
        given[key] = flag;
        return $"fedavg.cluster.{key} = {System.Text.Json.JsonSerializer.Serialize(value)}";
    }

    public static Option<string> DataDir() => new("--data-dir")
    {
        Description = $"Where datasets are installed (default: ${DatasetCatalog.DataDirVariable} or ./data).",
        DefaultValueFactory = _ => DatasetCatalog.DefaultDataDir(),
    };

    public static Option<string> Dataset(string fallback = "mnist") => new("--dataset")
    {
        Description = $"Dataset: {string.Join(", ", DatasetCatalog.All.Select(d => d.Name))}.",
        DefaultValueFactory = _ => fallback,
    };

    public static Option<string> Model(string fallback) => new("--model")
    {
        Description = $"Model: {string.Join(", ", FedAvg.Core.Models.ModelZoo.Names)}.",
        DefaultValueFactory = _ => fallback,
    };

    public static Option<T> Value<T>(string name, T fallback, string description) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => fallback,
    };
}
