// A one-line input for a name the user types exactly (an agent, a project, a branch, a
// secret's scope or key): no autocomplete and no spell check, which would change the name.
import type { ComponentProps } from 'react';

type Props = Omit<ComponentProps<'input'>, 'type' | 'value' | 'onChange'> & {
  value: string;
  onValue: (value: string) => void;
};

export function NameInput({ value, onValue, ...rest }: Props) {
  return <input type="text" autoComplete="off" spellCheck={false} {...rest} value={value} onChange={(e) => onValue(e.target.value)} />;
}
