using System.CommandLine;
using FedAvg.Core.Data;

namespace FedAvg.Cli;

/// <summary>Options that several commands share, with the same names and defaults everywhere.</summary>
public static class CommonOptions
{
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
