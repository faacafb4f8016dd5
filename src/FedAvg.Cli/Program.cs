using System.CommandLine;
using FedAvg.Cli;

return FedAvgCommand.Run(args);
